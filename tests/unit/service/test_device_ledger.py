"""One ledger of who holds which device: running or stopping tasks, running evaluations and live deployments. The
queue starts a task only on a device none of them holds, /system/gpus names each holder, and an evaluation or a
deployment that finds no free GPU is refused naming who holds them — never given a GPU someone holds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tuneforge.planning.devices import Device
from tuneforge.service.errors import Conflict
from tuneforge.service.models.serving_engines import gpus_needed, options_problem
from tuneforge.service.platform import Platform
from tuneforge.service.runtime.devices import Holder, claim_gpus, held_devices, job_environment
from tuneforge.service.runtime.executor import Launched, LocalExecutor, Placement
from tuneforge.service.runtime.scheduler import Scheduler
from tuneforge.settings import Settings
from tuneforge.store import Database, Deployment, Evaluation, RegisteredModel, Task
from tuneforge.store.scope import Actor, acting_as


def gpus(count: int) -> list[Device]:
    return [Device(index=i, kind="cuda", name=f"Fake GPU {i}", total_memory=80 * 2**30, free_memory=80 * 2**30,
                   compute_capability=(9, 0)) for i in range(count)]


class RecordingExecutor(LocalExecutor):
    """Starts nothing: records which run directories it was asked to launch, on which devices."""

    def __init__(self) -> None:
        super().__init__()
        self.launched: list[tuple[str, tuple[int, ...]]] = []

    def launch(self, run_dir: Path, placement: Placement) -> Launched:
        self.launched.append((run_dir.name, placement.devices))
        return Launched(pid=999_999, started_at=0.0, command=["true"])


@pytest.fixture()
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.upgrade()
    yield database
    database.dispose()


def _model(db: Database, name: str = "qa-tuned", owner_id: int | None = None) -> int:
    with db.session() as session:
        model = RegisteredModel(name=name, kind="base", source="bundled", owner_id=owner_id)
        session.add(model)
        session.flush()
        return model.id


def _task(db: Database, name: str, status: str, devices: list[int], owner_id: int | None = None) -> int:
    with db.session() as session:
        task = Task(name=name, base_model="m", dataset="d", output_path=f"/o/{name}", stage="sft",
                    finetuning_type="lora", training_args={}, status=status, devices=devices, owner_id=owner_id)
        session.add(task)
        session.flush()
        return task.id


def _evaluation(db: Database, model_id: int, status: str, devices: list[int]) -> int:
    with db.session() as session:
        row = Evaluation(model_id=model_id, dataset="identity", status=status, devices=devices)
        session.add(row)
        session.flush()
        return row.id


def _deployment(db: Database, model_id: int, name: str, status: str, devices: list[int]) -> int:
    with db.session() as session:
        row = Deployment(name=name, model_id=model_id, status=status, devices=devices)
        session.add(row)
        session.flush()
        return row.id


def test_the_ledger_holds_what_runs_and_nothing_that_ended(db: Database) -> None:
    model_id = _model(db)
    training = _task(db, "training", "running", [0])
    stopping = _task(db, "stopping", "stopping", [1])
    evaluation = _evaluation(db, model_id, "running", [2])
    restarting = _deployment(db, model_id, "chat", "restarting", [3])  # a crashed one keeps its GPU for the restart
    _task(db, "done", "completed", [4])
    _task(db, "waiting", "pending", [])
    _evaluation(db, model_id, "failed", [5])
    _deployment(db, model_id, "old-chat", "stopped", [6])
    with db.session() as session:
        held = held_devices(session)
    assert held == {0: Holder("task", training, "training", None), 1: Holder("task", stopping, "stopping", None),
                    2: Holder("evaluation", evaluation, "qa-tuned", None),
                    3: Holder("deployment", restarting, "chat", None)}


def test_a_task_waits_while_an_evaluation_holds_the_only_gpu_and_starts_when_it_ends(tmp_path: Path,
                                                                                      db: Database) -> None:
    executor = RecordingExecutor()
    scheduler = Scheduler(db, Settings(home=tmp_path / "home"), executor, gpus(1))
    evaluation = _evaluation(db, _model(db), "running", [0])
    task_id = _task(db, "queued", "pending", [])
    scheduler.launch_pending()
    with db.session() as session:
        assert session.get_one(Task, task_id).status == "pending"
    assert executor.launched == [] and scheduler.busy_devices() == {0}

    with db.session() as session:
        session.get_one(Evaluation, evaluation).status = "completed"
    scheduler.launch_pending()
    assert executor.launched == [(f"task-{task_id}", (0,))]
    with db.session() as session:
        assert session.get_one(Task, task_id).devices == [0]


def test_no_free_gpu_is_a_conflict_naming_the_holders_and_a_member_sees_no_other_users_names(db: Database) -> None:
    model_id = _model(db)
    _task(db, "alice-run", "running", [0], owner_id=1)
    _deployment(db, model_id, "team-chat", "running", [1])
    with db.session() as session, pytest.raises(Conflict) as refused:
        claim_gpus(session, gpus(2), 1, "the evaluation", None)
    assert refused.value.status == 409
    assert ("GPU 0 is held by task 'alice-run' (id 1); GPU 1 is held by deployment 'team-chat' (id 1)"
            in refused.value.message)
    assert refused.value.details == [{"field": "devices", "message": "0 free, 1 needed"}]

    bob = Actor(2, "bob", is_admin=False)
    with db.session() as session, pytest.raises(Conflict) as refused_for_bob:
        claim_gpus(session, gpus(2), 1, "the evaluation", bob)
    assert "another user's task (id 1)" in refused_for_bob.value.message
    assert "alice-run" not in refused_for_bob.value.message and "team-chat" in refused_for_bob.value.message


def test_claims_take_free_gpus_lowest_first_and_none_on_a_cpu_host(db: Database) -> None:
    _task(db, "training", "running", [1])
    with db.session() as session:
        assert claim_gpus(session, gpus(4), 2, "deployment 'x'", None) == [0, 2]
        assert claim_gpus(session, gpus(4), 0, "deployment 'x'", None) == []
        slots = [Device(index=i, kind="cpu", name="CPU", total_memory=0, free_memory=0) for i in range(2)]
        assert claim_gpus(session, slots, 1, "the evaluation", None) == []  # CPU slots are training's
        with pytest.raises(Conflict, match="needs 4 GPUs and 3 of 4 are free"):
            claim_gpus(session, gpus(4), 4, "deployment 'x'", None)


def test_a_job_sees_exactly_the_gpus_it_holds() -> None:
    base = {"PATH": "/usr/bin", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    assert job_environment(base, gpus(4), [2])["CUDA_VISIBLE_DEVICES"] == "2"
    assert job_environment(base, gpus(4), [2])["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"  # NVML's numbering
    assert job_environment(base, gpus(4), [1, 3])["CUDA_VISIBLE_DEVICES"] == "1,3"
    assert job_environment(base, gpus(4), [])["CUDA_VISIBLE_DEVICES"] == ""  # on the CPU: no GPU a task holds
    slots = [Device(index=0, kind="cpu", name="CPU", total_memory=0, free_memory=0)]
    assert job_environment(base, slots, []) == base
    assert base["CUDA_VISIBLE_DEVICES"] == "0,1,2,3"  # the server's own environment is not changed


def test_a_deployment_holds_one_gpu_per_tensor_parallel_rank_and_a_bad_count_names_the_field() -> None:
    assert gpus_needed("transformers", {}) == 1
    assert gpus_needed("vllm", {"tensor_parallel_size": 2}) == gpus_needed("vllm", {"tensor_parallel_size": "2"}) == 2
    assert gpus_needed("llamacpp", {"n_gpu_layers": 0}) == 0 and gpus_needed("llamacpp", {}) == 1
    for bad in (0, -1, "two", 1.5, True):
        problem = options_problem("vllm", {"tensor_parallel_size": bad})
        assert problem is not None and problem.field == "options.tensor_parallel_size", bad


def test_the_inventory_names_each_devices_holder(tmp_path: Path, database_url: str) -> None:
    settings = Settings(home=tmp_path / "home", database_url=database_url)
    platform = Platform(settings, devices=gpus(4), executor=RecordingExecutor())
    try:
        model_id = _model(platform.db)
        task_id = _task(platform.db, "training", "running", [0])
        evaluation = _evaluation(platform.db, model_id, "running", [1])
        deployment = _deployment(platform.db, model_id, "chat", "starting", [2])
        inventory = platform.tasks.device_inventory().model_dump(by_alias=True)
        _task(platform.db, "alice-run", "running", [3], owner_id=1)
        with acting_as(Actor(2, "bob", is_admin=False)):
            seen_by_bob = platform.tasks.device_inventory().model_dump(by_alias=True)["devices"][3]
    finally:
        platform.close()
    assert [(d["index"], d["busy"]) for d in inventory["devices"]] == [(0, True), (1, True), (2, True), (3, False)]
    assert [d["holder"] for d in inventory["devices"]] == [
        {"kind": "task", "id": task_id, "name": "training"},
        {"kind": "evaluation", "id": evaluation, "name": "qa-tuned"},
        {"kind": "deployment", "id": deployment, "name": "chat"}, None]
    # the field clients read before stays as it was: the task, only where a task holds the device
    assert [d["task"] for d in inventory["devices"]] == [{"taskId": task_id, "taskName": "training"}, None, None, None]
    # a member sees that another user's task holds GPU 3 (it is not free), not what it is called
    assert seen_by_bob["busy"] and seen_by_bob["task"] is None
    assert seen_by_bob["holder"] == {"kind": "task", "id": task_id + 1, "name": None}
