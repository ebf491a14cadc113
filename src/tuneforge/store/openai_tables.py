"""The OpenAI fine-tuning API's own objects: uploaded files (each one a dataset version underneath) and fine-tuning
jobs (each one a task underneath). Ids are OpenAI's style strings (`file-…`, `ftjob-…`)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tuneforge.store.scope import owned
from tuneforge.store.tables import Base


@owned
class OpenAIFile(Base):
    __tablename__ = "openai_files"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner_id: Mapped[int | None] = mapped_column(Integer, index=True)
    filename: Mapped[str] = mapped_column(String(255))
    purpose: Mapped[str] = mapped_column(String(32))
    bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[float] = mapped_column(Float, default=time.time, index=True)
    expires_at: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), default="uploaded")  # uploaded | processed | error
    status_details: Mapped[str | None] = mapped_column(Text)
    path: Mapped[str] = mapped_column(String(4096))
    format: Mapped[str | None] = mapped_column(String(16))  # chat | preference | reinforcement
    lines: Mapped[int | None] = mapped_column(Integer)
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"), index=True)
    dataset_version: Mapped[int | None] = mapped_column(Integer)


@owned
class FineTuningJob(Base):
    __tablename__ = "fine_tuning_jobs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner_id: Mapped[int | None] = mapped_column(Integer, index=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id", ondelete="SET NULL"), unique=True)
    model: Mapped[str] = mapped_column(String(1024))
    training_file: Mapped[str] = mapped_column(String(40))
    validation_file: Mapped[str | None] = mapped_column(String(40))
    method: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # {"type": ..., <type>: {hyperparameters}}
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # resolved: "auto" replaced
    suffix: Mapped[str | None] = mapped_column(String(64))
    seed: Mapped[int] = mapped_column(Integer)
    # `metadata` is taken on declarative classes: the attribute has another name, the column keeps OpenAI's
    job_metadata: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON)
    integrations: Mapped[list[Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(24), default="validating_files")
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    fine_tuned_model: Mapped[str | None] = mapped_column(String(255))
    trained_tokens: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[float] = mapped_column(Float, default=time.time, index=True)
    finished_at: Mapped[float | None] = mapped_column(Float)
    organization: Mapped[str] = mapped_column(String(64), default="tuneforge")  # the <org> of ft:<base>:<org>:…
    control: Mapped[str | None] = mapped_column(String(16))  # what the user asked last: cancel | pause
    # The job's own events ({at, level, message, data}): created, validated, cancelled, paused, resumed, finished;
    # the training steps and checkpoints come from its task.
    notes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # Its checkpoints published as models ({step, model, created_at, metrics}): listed even once the task is gone.
    checkpoint_models: Mapped[list[Any]] = mapped_column(JSON, default=list)
