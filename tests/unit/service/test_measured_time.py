"""The time estimate learns from a similar task that completed here, and from no other."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuneforge.service.tasks.measured_time import with_measured_time
from tuneforge.settings import Settings
from tuneforge.store import Database, Task

ARGS = {"stage": "sft", "finetuning_type": "lora", "cutoff_len": 1024, "per_device_train_batch_size": 4,
        "ray_num_workers": 2}
FORMULA = {"tokens_per_second": 1000.0, "seconds_per_epoch": 60.0, "total_seconds": 180.0, "basis": "FLOPs"}
RAY = {"executor": "ray", "nodes": 2, "gpu_count": 1}


@pytest.fixture()
def db(tmp_path: Path) -> Database:
    database = Database(Settings(home=tmp_path).database)
    database.upgrade()
    return database


def _completed(db: Database, name: str, tokens_per_second: float, **changes) -> None:
    with db.session() as session:
        session.add(Task(name=name, base_model="/models/m", dataset="d", output_path=f"/o/{name}", stage="sft",
                         finetuning_type="lora", training_args={**ARGS, **changes}, gpu_config=RAY, device_count=2,
                         status="completed", tokens_per_second=tokens_per_second, ended_at=1.0))


def test_a_similar_completed_task_s_throughput_replaces_the_formula_s(db):
    _completed(db, "earlier-run", 250.0)
    with db.session() as session:
        estimate = with_measured_time(session, dict(FORMULA), "/models/m", ARGS, 2, RAY)
    assert estimate["tokens_per_second"] == 250.0 and estimate["total_seconds"] == 720.0
    assert estimate["seconds_per_epoch"] == 240.0 and estimate["time_source"] == "measured"
    assert "earlier-run" in estimate["basis"] and "250 tokens/s" in estimate["basis"]


@pytest.mark.parametrize(("changes", "devices", "placement"), [
    ({"cutoff_len": 2048}, 2, RAY),  # a different batch shape
    ({}, 4, RAY),  # more devices
    ({}, 2, {"executor": "kubernetes", "nodes": 2, "gpu_count": 1}),  # another executor
])
def test_a_task_that_differs_in_what_sets_the_speed_teaches_nothing(db, changes, devices, placement):
    _completed(db, "other-run", 250.0, **changes)
    with db.session() as session:
        estimate = with_measured_time(session, dict(FORMULA), "/models/m", ARGS, devices, placement)
    assert estimate == FORMULA
