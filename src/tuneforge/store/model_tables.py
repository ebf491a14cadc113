"""Registered models: base models and fine-tuned ones with their lineage."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tuneforge.store.scope import owned
from tuneforge.store.tables import Base


@owned
class RegisteredModel(Base):
    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("owner_id", "name"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # base | finetuned
    description: Mapped[str] = mapped_column(Text, default="")
    owner_id: Mapped[int | None] = mapped_column(Integer, index=True)
    source: Mapped[str] = mapped_column(String(4096))  # base: dir | hub id | .gguf | bundled; finetuned: its base
    adapter_path: Mapped[str | None] = mapped_column(String(4096))  # LoRA adapter folder (finetuned)
    model_path: Mapped[str | None] = mapped_column(String(4096))  # a full model folder (full fine-tune, merged)
    merged: Mapped[bool] = mapped_column(Boolean, default=False)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id", ondelete="SET NULL"))
    task_name: Mapped[str | None] = mapped_column(String(63))
    checkpoint_step: Mapped[int | None] = mapped_column(Integer)  # None: the task's final model
    datasets: Mapped[list[Any]] = mapped_column(JSON, default=list)  # dataset references (name@vN or paths)
    training_config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    # a base model imported from an object store is `importing` (with its progress) until its files are here
    status: Mapped[str] = mapped_column(String(16), default="ready", server_default="ready")  # ready|importing|failed
    progress: Mapped[float] = mapped_column(Float, default=100.0, server_default="100")
    origin: Mapped[str | None] = mapped_column(String(4096))  # the URI it was imported from
    error_message: Mapped[str | None] = mapped_column(Text)


@owned
class Deployment(Base):
    """A named serving process for one registered model, managed by the service (start, health, restart, stop)."""

    __tablename__ = "deployments"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    owner_id: Mapped[int | None] = mapped_column(Integer, index=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="RESTRICT"), index=True)
    engine: Mapped[str] = mapped_column(String(16), default="transformers")
    status: Mapped[str] = mapped_column(String(16), default="starting")  # starting|running|restarting|failed|stopped
    port: Mapped[int | None] = mapped_column(Integer)
    pid: Mapped[int | None] = mapped_column(Integer)
    pid_started_at: Mapped[float | None] = mapped_column(Float)
    restarts: Mapped[int] = mapped_column(Integer, default=0)
    command: Mapped[list[Any] | None] = mapped_column(JSON)
    log_path: Mapped[str] = mapped_column(String(4096), default="")
    error_message: Mapped[str | None] = mapped_column(Text)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # the GPUs it holds while live (service.runtime.devices); kept across crash restarts, [] on a CPU host
    devices: Mapped[list[Any]] = mapped_column(JSON, default=list, server_default="[]")
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    started_at: Mapped[float | None] = mapped_column(Float)


@owned
class Evaluation(Base):
    """An evaluation job of one model (and, for a before / after report, a baseline) on a dataset split. The full
    report (every sample, every output) stays in the job folder's results.json; the row keeps the headline scores."""

    __tablename__ = "evaluations"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int | None] = mapped_column(Integer, index=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    baseline: Mapped[str | None] = mapped_column(String(4096))  # what the model is compared with (label: source)
    dataset: Mapped[str] = mapped_column(String(4096))
    split: Mapped[str] = mapped_column(String(16), default="test")
    status: Mapped[str] = mapped_column(String(16), default="running")  # running|completed|failed|stopped
    stage: Mapped[str | None] = mapped_column(String(32))
    percentage: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str | None] = mapped_column(Text)
    job_dir: Mapped[str] = mapped_column(String(4096), default="")
    pid: Mapped[int | None] = mapped_column(Integer)
    pid_started_at: Mapped[float | None] = mapped_column(Float)
    devices: Mapped[list[Any]] = mapped_column(JSON, default=list, server_default="[]")  # its GPUs while running
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    scores: Mapped[list[Any]] = mapped_column(JSON, default=list)  # EvalResults.models, without sample lists
    error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    finished_at: Mapped[float | None] = mapped_column(Float)


@owned
class Grader(Base):
    """A stored, named grader (OpenAI's grader schema, schemas.graders): a GRPO reward and an evaluation metric."""

    __tablename__ = "graders"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    owner_id: Mapped[int | None] = mapped_column(Integer, index=True)
    type: Mapped[str] = mapped_column(String(32))  # string_check | text_similarity | python | score_model | …
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)  # the grader object as the user gave it, validated
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    updated_at: Mapped[float] = mapped_column(Float, default=time.time)
