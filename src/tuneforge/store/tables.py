"""ORM tables. The task row holds every field of a fine-tuning task plus what the console shows live."""

from __future__ import annotations

import time
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from tuneforge.store.scope import owned


class Base(DeclarativeBase):
    type_annotation_map: ClassVar = {dict[str, Any]: JSON, list[Any]: JSON}


@owned
class Experiment(Base):
    """Tasks that share base model, template, method, stage and dataset and differ in hyper-parameters."""

    __tablename__ = "experiments"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    owner_id: Mapped[int | None] = mapped_column(Integer, index=True)
    base_model: Mapped[str] = mapped_column(String(1024))
    template: Mapped[str] = mapped_column(String(64))
    finetuning_type: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str] = mapped_column(String(16))
    dataset: Mapped[str] = mapped_column(String(1024))
    created_at: Mapped[float] = mapped_column(Float, default=time.time)

    tasks: Mapped[list[Task]] = relationship(back_populates="experiment")


@owned
class Task(Base):
    __tablename__ = "tasks"
    # AUTOINCREMENT on SQLite: a deleted task's id is never given to a new one (old links must not show another task)
    __table_args__ = (Index("ix_tasks_status_created", "status", "created_at"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    owner_id: Mapped[int | None] = mapped_column(Integer, index=True)
    experiment_id: Mapped[int | None] = mapped_column(ForeignKey("experiments.id", ondelete="SET NULL"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    base_model: Mapped[str] = mapped_column(String(1024))
    dataset: Mapped[str] = mapped_column(String(1024))
    output_path: Mapped[str] = mapped_column(String(4096))
    stage: Mapped[str] = mapped_column(String(16))
    finetuning_type: Mapped[str] = mapped_column(String(16))
    training_args: Mapped[dict[str, Any]] = mapped_column(JSON)
    auto_values: Mapped[list[Any]] = mapped_column(JSON, default=list)
    gpu_config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    estimate: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    requested_devices: Mapped[list[Any] | None] = mapped_column(JSON)  # cuda_visible_devices, or None: any
    device_count: Mapped[int] = mapped_column(Integer, default=1)
    devices: Mapped[list[Any]] = mapped_column(JSON, default=list)  # what the scheduler gave it
    command: Mapped[list[Any] | None] = mapped_column(JSON)
    run_dir: Mapped[str] = mapped_column(String(4096), default="")
    log_path: Mapped[str] = mapped_column(String(4096), default="")
    error_message: Mapped[str | None] = mapped_column(Text)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    pid: Mapped[int | None] = mapped_column(Integer)
    pid_started_at: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float, default=time.time, index=True)
    started_at: Mapped[float | None] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float)
    stop_requested_at: Mapped[float | None] = mapped_column(Float)
    resume_requested: Mapped[bool] = mapped_column(default=False)
    step: Mapped[int] = mapped_column(Integer, default=0)
    total_steps: Mapped[int | None] = mapped_column(Integer)
    epoch: Mapped[float | None] = mapped_column(Float)
    loss: Mapped[float | None] = mapped_column(Float)
    tokens_trained: Mapped[int] = mapped_column(BigInteger, default=0)
    tokens_per_second: Mapped[float | None] = mapped_column(Float)
    eta_s: Mapped[float | None] = mapped_column(Float)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)

    experiment: Mapped[Experiment | None] = relationship(back_populates="tasks")
    points: Mapped[list[MetricPoint]] = relationship(cascade="all, delete-orphan", passive_deletes=True,
                                                     order_by="MetricPoint.seq")
    checkpoints: Mapped[list[Checkpoint]] = relationship(cascade="all, delete-orphan", passive_deletes=True,
                                                         order_by="Checkpoint.step")


class MetricPoint(Base):
    """One point of the loss / eval-loss / lr series, keyed by the event's seq: ingesting twice changes nothing."""

    __tablename__ = "task_metrics"
    __table_args__ = (UniqueConstraint("task_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(8))  # train | eval
    step: Mapped[int] = mapped_column(Integer)
    epoch: Mapped[float | None] = mapped_column(Float)
    loss: Mapped[float | None] = mapped_column(Float)
    eval_loss: Mapped[float | None] = mapped_column(Float)
    learning_rate: Mapped[float | None] = mapped_column(Float)
    grad_norm: Mapped[float | None] = mapped_column(Float)
    tokens: Mapped[int | None] = mapped_column(BigInteger)
    # The stage's own figures at this step (rewards/margins, kl, reward, reward_std, …): name -> value.
    extra: Mapped[dict[str, float] | None] = mapped_column(JSON)
    time: Mapped[float] = mapped_column(Float)


class Checkpoint(Base):
    __tablename__ = "task_checkpoints"
    __table_args__ = (UniqueConstraint("task_id", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(4096))
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
