"""The durable store: SQLAlchemy 2 tables, sessions, Alembic migrations (SQLite by default, PostgreSQL by URL)."""

from tuneforge.store.database import Database
from tuneforge.store.dataset_tables import Dataset, DatasetVersion, TaskDataset
from tuneforge.store.model_tables import Deployment, Evaluation, Grader, RegisteredModel
from tuneforge.store.openai_tables import FineTuningJob, OpenAIFile
from tuneforge.store.tables import Base, Checkpoint, Experiment, MetricPoint, Task
from tuneforge.store.user_tables import ApiKey, User

__all__ = ["ApiKey", "Base", "Checkpoint", "Database", "Dataset", "DatasetVersion", "Deployment", "Evaluation",
           "Experiment", "FineTuningJob", "Grader", "MetricPoint", "OpenAIFile",
           "RegisteredModel", "Task", "TaskDataset", "User"]
