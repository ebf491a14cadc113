"""Tasks on a real local Ray cluster (scripts/ray.sh) through the API: gpuConfig's placement becomes Ray workers;
stop, a lost worker and resume behave as for a local task."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import psutil
import pytest

from tests.fixtures.ray_cluster import worker_pids
from tests.integration.service.conftest import service_settings, task_body, wait_for
from tuneforge.rundir import read_events

pytestmark = pytest.mark.slow
STOP_LINE = re.compile(r"stop requested: saving a checkpoint at step (\d+)")


@pytest.fixture()
def settings(tmp_path, tiny_model_dir, ray_address):
    """SQLite only: the store is not what these tests are about, and each costs a minute of training."""
    return service_settings(tmp_path, tiny_model_dir, f"sqlite:///{tmp_path / 'ray.db'}", ray_address=ray_address)


def ray_task(name: str, tiny_model_dir: Path, dataset_dir: Path, **args) -> dict:
    return {**task_body(name, tiny_model_dir, dataset_dir, per_device_train_batch_size=2, **args),
            "gpuConfig": {"executor": "ray", "nodes": 2, "gpu_count": 1}}


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def wait_until(condition, what: str, client=None, task_id: int | None = None, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if client is not None:
            task = client.get("/finetuning/getTask", params={"id": task_id}).json()
            assert task["status"] == "running", f"{task['status']} before {what}: {task['errorMessage']}"
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.2)


def test_a_stopped_ray_task_stops_both_workers_at_one_step(make_client, tiny_model_dir, dataset_dir):
    client = make_client()
    created = client.post("/finetuning/createTask", json=ray_task("ray-stop", tiny_model_dir, dataset_dir,
                                                                  max_steps=100000, save_steps=100000))
    assert created.status_code == 201, created.text
    task = created.json()
    assert task["trainingArgs"]["ray_num_workers"] == 2 and task["trainingArgs"]["resources_per_worker"] == {
        "CPU": 1}
    running = wait_for(client, task["id"], {"running"})
    assert running["devices"] == []  # the cluster places it: no device of this host is held
    run_dir = Path(running["runDir"])
    wait_until(lambda: len(worker_pids(run_dir)) == 2 and any(
        e["type"] == "progress" for e in read_events(run_dir / "events.jsonl")), "progress from both workers",
        client, task["id"])
    pids = worker_pids(run_dir)

    asked = time.monotonic()
    client.post("/finetuning/stopTask", json={"id": task["id"]})
    wait_until(lambda: not any(alive(pid) for pid in pids.values()), "end of both Ray workers")
    gone = time.monotonic() - asked
    stopped = wait_for(client, task["id"], {"stopped", "failed"})
    assert stopped["status"] == "stopped", stopped["errorMessage"]
    final = read_events(run_dir / "events.jsonl")[-1]
    steps = {int(m.group(1)) for name in ("train.log", "train.rank1.log")
             for m in [STOP_LINE.search((run_dir / name).read_text())] if m}
    assert steps == {final["step"]} and (Path(final["checkpoint"]) / "adapter_model.safetensors").is_file()
    print(f"stop → both Ray workers ended in {gone:.1f} s")


def test_a_killed_ray_worker_fails_the_task_with_the_reason_and_resume_completes_it(make_client, tiny_model_dir,
                                                                                      dataset_dir):
    client = make_client()
    task = client.post("/finetuning/createTask", json=ray_task("ray-kill", tiny_model_dir, dataset_dir,
                                                               max_steps=60, save_steps=2)).json()
    run_dir = Path(wait_for(client, task["id"], {"running"})["runDir"])
    wait_until(lambda: len(worker_pids(run_dir)) == 2 and any(
        (c / "trainer_state.json").is_file() for c in (run_dir / "checkpoints").glob("checkpoint-*")),
        "a whole checkpoint", client, task["id"])

    # 60 steps: the kill, right after the first checkpoint (step 2), lands long before the last
    killed = time.monotonic()
    os.kill(worker_pids(run_dir)[1], signal.SIGKILL)
    failed = wait_for(client, task["id"], {"failed", "completed"}, timeout=300)
    noticed = time.monotonic() - killed
    assert failed["status"] == "failed"
    # Ray names the lost worker when its controller sees the death in the same poll as the broken collective (every
    # run here); a poll that sees rank 0's error first reports that, the connection its peer dropped.
    assert failed["errorMessage"].startswith("a Ray worker was lost: rank 1 (pid ") or "Connection" in failed[
        "errorMessage"], failed["errorMessage"]
    assert "resume the task" in failed["errorMessage"]
    print(f"kill -9 of a Ray worker → task failed in {noticed:.1f} s: {failed['errorMessage']}")

    resumed = client.post("/finetuning/resumeTask", json={"id": task["id"]})
    assert resumed.status_code == 200, resumed.text
    done = wait_for(client, task["id"], {"completed", "failed"}, timeout=600)
    assert done["status"] == "completed", done["errorMessage"]
    started = [e for e in read_events(run_dir / "events.jsonl") if e["type"] == "started"]
    assert started[-1]["resumed_from"], started[-1]
    assert max(e["step"] for e in read_events(run_dir / "events.jsonl") if e["type"] == "progress") == 60
