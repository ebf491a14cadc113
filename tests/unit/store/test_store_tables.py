"""The store on SQLite and PostgreSQL: migrations apply once, rows round-trip, names and series points are unique."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from tuneforge.store import Checkpoint, Database, MetricPoint, Task


def _task(name: str, **extra) -> Task:
    return Task(name=name, base_model="bundled", dataset="identity", output_path="/tmp/out", stage="sft",
                finetuning_type="lora", training_args={"learning_rate": 1e-4, "lora_target": ["all"]},
                created_at=time.time(), **extra)


def test_migrations_create_the_tables_once(database_url):
    db = Database(database_url)
    db.upgrade()
    db.upgrade()  # already at head: nothing to do, no error
    tables = set(inspect(db.engine).get_table_names())
    assert {"tasks", "experiments", "task_metrics", "task_checkpoints", "alembic_version"} <= tables
    db.dispose()


def test_the_migrations_build_exactly_the_tables_the_code_declares(database_url):
    """A column added to a table class without a migration (or the reverse) fails here, not on a user's database."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from tuneforge.store import Base

    db = Database(database_url)
    db.upgrade()
    with db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    db.dispose()
    assert differences == []


def test_a_task_round_trips_with_its_series_and_checkpoints(database_url):
    db = Database(database_url)
    db.upgrade()
    with db.session() as session:
        task = _task("t1", tokens_trained=5_000_000_000, metrics={"eval_loss": 1.5})
        session.add(task)
        session.flush()
        session.add_all([MetricPoint(task_id=task.id, seq=s, kind="train", step=s, loss=2.0 / s, time=time.time())
                         for s in (1, 2, 3)])
        session.add(Checkpoint(task_id=task.id, step=3, path="/tmp/ck-3"))
        task_id = task.id
    with db.session() as session:
        task = session.get(Task, task_id)
        assert task.training_args["lora_target"] == ["all"] and task.tokens_trained == 5_000_000_000
        assert [p.step for p in task.points] == [1, 2, 3] and task.checkpoints[0].path == "/tmp/ck-3"
        assert task.status == "pending" and task.metrics == {"eval_loss": 1.5}
    with pytest.raises(IntegrityError), db.session() as session:
        session.add(MetricPoint(task_id=task_id, seq=2, kind="train", step=2, time=time.time()))
    with pytest.raises(IntegrityError), db.session() as session:
        session.add(_task("t1"))
    with db.session() as session:  # deleting a task removes its series and checkpoints
        session.delete(session.get(Task, task_id))
    with db.session() as session:
        assert session.scalars(select(MetricPoint)).all() == [] and session.scalars(select(Checkpoint)).all() == []
    db.dispose()
