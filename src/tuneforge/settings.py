"""Process-wide settings: one object, from TUNEFORGE_* environment variables (and an optional config file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where tuneforge keeps its state. Every path defaults to a folder under `home` (~/.tuneforge)."""

    model_config = SettingsConfigDict(env_prefix="TUNEFORGE_", env_file=None, extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".tuneforge")
    model_cache: Path | None = Field(
        default=None, description="Converted models (e.g. the bundled GGUF as safetensors). Default: HOME/models."
    )
    runs_dir: Path | None = Field(default=None, description="Run directories of tasks. Default: HOME/runs.")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL. Default: SQLite in HOME.")

    @property
    def models_path(self) -> Path:
        return self.model_cache or self.home / "models"

    @property
    def runs_path(self) -> Path:
        return self.runs_dir or self.home / "runs"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
