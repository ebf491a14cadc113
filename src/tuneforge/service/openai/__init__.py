"""OpenAI's fine-tuning API served by tuneforge: uploaded files (each a managed dataset version underneath)."""
