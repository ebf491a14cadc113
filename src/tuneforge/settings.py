"""Process-wide settings: one object, from TUNEFORGE_* environment variables (and an optional config file)."""

from __future__ import annotations

import os
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
    outputs_dir: Path | None = Field(default=None, description="Default parent of task outputs. Default: HOME/outputs.")
    allowed_roots: list[Path] = Field(
        default_factory=list,
        description="Folders task outputs, datasets and models given by path must lie in (besides HOME). "
        "JSON list in the environment, e.g. TUNEFORGE_ALLOWED_ROOTS='[\"/data\", \"/output\"]'.",
    )
    cpu_slots: int = Field(default_factory=lambda: max(1, (os.cpu_count() or 1) // 2), ge=1,
                           description="Training slots on a host without GPUs (tasks run one per slot).")
    stop_grace_s: float = Field(default=60.0, gt=0, description="Seconds a stopping worker gets before it is killed.")
    poll_interval_s: float = Field(default=0.5, gt=0, description="How often the scheduler reads the run directories.")
    max_json_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024,
                                     description="Largest JSON request body; larger ones are answered 413.")
    max_upload_bytes: int = Field(default=10 * 1024 * 1024 * 1024, ge=1024,
                                  description="Largest multipart upload (dataset files); larger ones are answered 413.")
    max_json_keys: int = Field(default=10_000, ge=100, description="Most object keys in one JSON request body, "
                               "counted before it is parsed; more are answered 413.")
    max_training_args: int = Field(default=500, ge=10, description="Most keys in trainingArgs (and gpuConfig).")
    max_json_depth: int = Field(default=8, ge=2, description="Deepest nesting of trainingArgs and gpuConfig values.")
    max_description_chars: int = Field(default=10_000, ge=100, description="Longest description of any resource.")
    host: str = "127.0.0.1"
    port: int = 8321

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'tuneforge.db'}"

    @property
    def outputs_path(self) -> Path:
        return self.outputs_dir or self.home / "outputs"

    @property
    def roots(self) -> list[Path]:
        """Every folder user-given paths may point into: HOME (runs, outputs, models) plus the configured ones."""
        return [self.home.expanduser().resolve(), *(Path(r).expanduser().resolve() for r in self.allowed_roots)]

    @property
    def reserved_paths(self) -> list[Path]:
        """The platform's own folders: a task may never write its output into one of them (a task output is
        deleted with its model, and would take the registry or another run with it)."""
        home = self.home.expanduser().resolve()
        own = [home / name for name in ("datasets", "deployments", "evaluations", "exported", "exports", "registry")]
        return [*own, self.models_path.expanduser().resolve(), self.runs_path.expanduser().resolve()]

    @property
    def models_path(self) -> Path:
        return self.model_cache or self.home / "models"

    @property
    def runs_path(self) -> Path:
        return self.runs_dir or self.home / "runs"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
