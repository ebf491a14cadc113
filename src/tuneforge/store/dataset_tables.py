"""Managed datasets: a named dataset with its field mapping, and immutable versions by content hash."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tuneforge.store.scope import owned
from tuneforge.store.tables import Base


@owned
class Dataset(Base):
    __tablename__ = "datasets"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    owner_id: Mapped[int | None] = mapped_column(Integer, index=True)
    formatting: Mapped[str] = mapped_column(String(16))  # alpaca | sharegpt | openai | text
    purpose: Mapped[str] = mapped_column(String(16))  # sft | pt | preference | kto
    columns: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    tags: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)

    versions: Mapped[list[DatasetVersion]] = relationship(cascade="all, delete-orphan", passive_deletes=True,
                                                          order_by="DatasetVersion.version")


class DatasetVersion(Base):
    """Files never change after upload: a task that pinned v1 trains on v1 whatever is uploaded later."""

    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("dataset_id", "version"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default="validating")  # validating | valid | invalid
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    source: Mapped[str] = mapped_column(String(4096), default="upload")
    path: Mapped[str] = mapped_column(String(4096))  # the version's folder under HOME/datasets
    files: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # split → [file names]
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    rows: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # split → rows ok
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    stats: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)


class TaskDataset(Base):
    """Which dataset versions a task trains on (and with what mixing weight): deletion is refused while an active
    task uses one."""

    __tablename__ = "task_datasets"
    __table_args__ = (UniqueConstraint("task_id", "version_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id", ondelete="RESTRICT"), index=True)
    weight: Mapped[float | None] = mapped_column(Float)
