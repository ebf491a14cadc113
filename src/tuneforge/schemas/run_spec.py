"""spec.json: what a worker is asked to do. The worker is a pure function of it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SPEC_VERSION = 1


class RunSpec(BaseModel):
    """A training run: the raw training config (validated again by the worker) and where relative paths start."""

    model_config = ConfigDict(extra="forbid")

    version: int = SPEC_VERSION
    config: dict[str, Any] = Field(description="Training arguments, LLaMA-Factory names (TrainingConfig).")
    config_dir: str | None = Field(default=None, description="Folder relative dataset/model paths resolve against.")
    task_id: str | None = None
