"""Users, their roles and limits, and their API keys."""
