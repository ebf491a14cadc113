"""Dataset use-cases: upload or register, versions, background validation and statistics, preview, delete."""
