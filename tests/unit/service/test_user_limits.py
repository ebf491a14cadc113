"""Per-user limits in the queue: a user at their limit of running tasks or devices waits; others start past them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuneforge.planning.devices import Device
from tuneforge.service.runtime.executor import Launched, LocalExecutor, Placement
from tuneforge.service.runtime.scheduler import Scheduler
from tuneforge.settings import Settings
from tuneforge.store import Database, Task, User
from tuneforge.store.scope import Actor, acting_as


class RecordingExecutor(LocalExecutor):
    """Starts nothing: records which run directories it was asked to launch."""

    def __init__(self) -> None:
        super().__init__()
        self.launched: list[str] = []

    def launch(self, run_dir: Path, placement: Placement) -> Launched:
        self.launched.append(run_dir.name)
        return Launched(pid=999_999, started_at=0.0, command=["true"])


def _pending(db: Database, user: Actor, name: str, devices: int = 1) -> None:
    with acting_as(user), db.session() as session:
        session.add(Task(name=name, base_model="m", dataset="d", output_path=f"/o/{name}", stage="sft",
                         finetuning_type="lora", training_args={}, device_count=devices))


@pytest.fixture()
def queue(tmp_path: Path) -> tuple[Database, Scheduler, RecordingExecutor]:
    settings = Settings(home=tmp_path / "home", cpu_slots=4)
    db = Database(settings.database)
    db.upgrade()
    devices = [Device(index=i, kind="cpu", name=f"slot {i}", total_memory=0, free_memory=0) for i in range(4)]
    executor = RecordingExecutor()
    return db, Scheduler(db, settings, executor, devices), executor


def test_a_user_at_their_limit_waits_and_others_start_past_them(queue: tuple) -> None:
    db, scheduler, executor = queue
    with db.session() as session:
        session.add_all([User(id=1, name="limited", role="member", max_running_tasks=1),
                         User(id=2, name="free", role="member"),
                         User(id=3, name="two-devices", role="member", max_gpus=2)])
    limited, free, small = (Actor(1, "limited", False), Actor(2, "free", False), Actor(3, "two-devices", False))
    _pending(db, limited, "limited-1")
    _pending(db, limited, "limited-2")
    _pending(db, small, "small-1", devices=2)
    _pending(db, small, "small-2", devices=1)
    _pending(db, free, "free-1")
    scheduler.launch_pending()
    with db.session() as session:
        running = {t.name for t in session.query(Task).filter(Task.status == "running")}
    assert running == {"limited-1", "small-1", "free-1"}
    assert len(executor.launched) == 3


def test_devices_a_cluster_places_count_against_max_gpus(queue: tuple) -> None:
    """A task on a Ray cluster holds none of this host's devices, but its workers' devices are the user's all the
    same; a Ray of the task's own on this host claims them here like a local task."""
    db, scheduler, executor = queue
    scheduler.settings = scheduler.settings.model_copy(update={"ray_address": "10.0.0.5:6379"})
    with db.session() as session:
        session.add(User(id=1, name="two-gpus", role="member", max_gpus=2))
    user = Actor(1, "two-gpus", False)
    for name in ("ray-1", "ray-2"):
        with acting_as(user), db.session() as session:
            session.add(Task(name=name, base_model="m", dataset="d", output_path=f"/o/{name}", stage="sft",
                             finetuning_type="lora", training_args={"ray_num_workers": 2}, device_count=2))
    scheduler.launch_pending()
    scheduler.launch_pending()
    with db.session() as session:
        running = {t.name: t.devices for t in session.query(Task).filter(Task.status == "running")}
    assert running == {"ray-1": []} and executor.launched == ["task-1"]

    scheduler.settings = scheduler.settings.model_copy(update={"ray_address": None})
    with db.session() as session:
        session.query(Task).filter(Task.name == "ray-1").update({"status": "completed"})
    scheduler.launch_pending()
    with db.session() as session:
        running = {t.name: t.devices for t in session.query(Task).filter(Task.status == "running")}
    assert running == {"ray-2": [0, 1]}  # without a cluster address: on this host's devices, claimed
