"""The durable store: SQLAlchemy 2 tables, sessions, Alembic migrations (SQLite by default, PostgreSQL by URL)."""

from tuneforge.store.database import Database
from tuneforge.store.tables import Base, Checkpoint, Experiment, MetricPoint, Task

__all__ = ["Base", "Checkpoint", "Database", "Experiment", "MetricPoint", "Task"]
