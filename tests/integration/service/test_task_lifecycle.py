"""End to end on the tiny model: create → running → completed with progress, tokens, loss series and checkpoints;
stop → stopped with a checkpoint → resume → completed; copy; delete keeps the output folder."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.fixtures.polling import until
from tests.integration.service.conftest import task_body, wait_for


def test_a_task_runs_to_completion_with_everything_the_console_shows(make_client, tiny_model_dir, dataset_dir):
    client = make_client()
    created = client.post("/finetuning/createTask", json=task_body("first", tiny_model_dir, dataset_dir,
                                                                   eval_strategy="steps", eval_steps=4))
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]
    task = wait_for(client, task_id, {"completed", "failed"})
    assert task["status"] == "completed", task["errorMessage"]
    assert task["progress"] == 100 and task["step"] == 8 and task["totalSteps"] == 8
    assert task["tokensTrained"] > 0 and task["etaS"] == 0 and task["elapsedS"] > 0
    assert task["command"].startswith(os.sys.executable) and "tuneforge.engine.run" in task["command"]
    assert task["startTime"] and task["endTime"] >= task["startTime"]
    assert _exit_code(client, task_id) == 0  # it follows the final event once the process has ended
    assert task["metrics"]["train_loss"] > 0 and task["metrics"]["eval_loss"] > 0
    assert [c["step"] for c in task["checkpoints"]] == [4, 8]
    series = client.get("/finetuning/getTaskMetrics", params={"id": task_id}).json()
    steps = [step for step, _ in series["loss"]]
    assert steps == list(range(1, 9)), steps  # every step once: no gap, no duplicate
    assert series["loss"][-1][1] < series["loss"][0][1]
    assert [step for step, _ in series["evalLoss"]] == [4, 8] and len(series["learningRate"]) == 8
    log = client.get("/finetuning/getTaskLog", params={"id": task_id, "tail": 2}).json()
    assert len(log["lines"]) == 2 and "saved adapter" in " ".join(log["lines"]) and log["nextOffset"] > 0
    rest = client.get("/finetuning/getTaskLog", params={"id": task_id, "offset": log["nextOffset"]}).json()
    assert rest["lines"] == [] and rest["nextOffset"] == log["nextOffset"]
    assert Path(task["outputPath"], "adapter_config.json").is_file()
    gpus = client.get("/system/gpus").json()
    assert gpus["kind"] == "cpu" and len(gpus["devices"]) == 2 and not any(d["busy"] for d in gpus["devices"])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_stop_resume_copy_delete(make_client, tiny_model_dir, dataset_dir):
    client = make_client()
    body = task_body("stoppable", tiny_model_dir, dataset_dir, max_steps=400, save_steps=1000)
    task_id = client.post("/finetuning/createTask", json=body).json()["id"]
    _wait_for_step(client, task_id, 2)
    stopping = client.post("/finetuning/stopTask", json={"id": task_id}).json()
    assert stopping["status"] in ("stopping", "stopped")
    stopped = wait_for(client, task_id, {"stopped", "failed"})
    assert stopped["status"] == "stopped", stopped["errorMessage"]
    assert stopped["checkpoints"] and stopped["checkpoints"][-1]["step"] == stopped["step"]
    again = client.post("/finetuning/stopTask", json={"id": task_id})
    assert again.status_code == 409

    resumed = client.post("/finetuning/resumeTask", json={"id": task_id})
    assert resumed.status_code == 200 and resumed.json()["status"] == "pending"
    _wait_for_step(client, task_id, stopped["step"] + 2)
    client.post("/finetuning/stopTask", json={"id": task_id})
    second = wait_for(client, task_id, {"stopped", "failed"})
    assert second["status"] == "stopped" and second["step"] > stopped["step"]
    series = client.get("/finetuning/getTaskMetrics", params={"id": task_id}).json()
    steps = [step for step, _ in series["loss"]]
    assert steps == list(range(1, len(steps) + 1)), steps  # the resumed run continues the series

    copy = client.post("/finetuning/copyTask", json={"id": task_id, "trainingArgs": {"max_steps": 2}})
    assert copy.status_code == 201, copy.text
    copied = copy.json()
    assert copied["name"] == "stoppable-copy" and copied["trainingArgs"]["lora_rank"] == 8
    assert copied["trainingArgs"]["max_steps"] == 2 and copied["outputPath"] != second["outputPath"]
    done = wait_for(client, copied["id"], {"completed", "failed"})
    assert done["status"] == "completed", done["errorMessage"]

    deleted = client.delete("/finetuning/deleteTask", params={"id": copied["id"]}).json()
    assert deleted["deleted"] and deleted["outputKept"] and Path(done["outputPath"], "adapter_config.json").exists()
    assert not Path(done["runDir"]).exists()
    assert client.get("/finetuning/getTask", params={"id": copied["id"]}).status_code == 404


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_killed_worker_fails_at_the_next_poll_with_exit_code_and_log_tail(make_client, tiny_model_dir,
                                                                            dataset_dir):
    """The scheduler polls every poll_interval_s (0.5 s); the first poll after the worker dies marks the task
    failed. Asserted on a poll run here, once the process is dead, rather than on a clock."""
    client = make_client()
    body = task_body("killed", tiny_model_dir, dataset_dir, max_steps=400, save_steps=1000)
    task_id = client.post("/finetuning/createTask", json=body).json()["id"]
    task = _wait_for_step(client, task_id, 1)
    os.killpg(task["pid"], signal.SIGKILL)
    until(lambda: _dead(task["pid"]), "the killed worker ended")
    client.app.state.platform.scheduler.tick()
    failed = client.get("/finetuning/getTask", params={"id": task_id}).json()
    assert failed["status"] == "failed", failed
    assert failed["exitCode"] == -9 and "code -9" in failed["errorMessage"]
    assert "Last log lines" in failed["errorMessage"] and "tuneforge" in failed["errorMessage"]


def _dead(pid: int) -> bool:
    """The worker (a child of this process: the server runs in the test) can be reaped. A zombie status is not
    enough: a killed multi-threaded process shows as a zombie while its threads still exit, and cannot be reaped
    until they have. WNOWAIT asks without reaping, so the server's poll still gets the exit code."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True  # already reaped, by the scheduler's own poll


def _exit_code(client, task_id: int) -> int:
    def recorded() -> dict | None:
        task = client.get("/finetuning/getTask", params={"id": task_id}).json()
        return task if task["exitCode"] is not None else None

    return int(until(recorded, f"task {task_id}'s exit code recorded")["exitCode"])


def _wait_for_step(client, task_id: int, step: int, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = client.get("/finetuning/getTask", params={"id": task_id}).json()
        if task["step"] >= step and task["status"] == "running":
            return task
        assert task["status"] in ("pending", "running"), task["errorMessage"]
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} did not reach step {step}")


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_two_devices_train_under_torchrun_and_stop_cleanly(make_client, tiny_model_dir, dataset_dir):
    """On a CPU host, "0,1" means two CPU slots: the same torchrun path a 2-GPU task takes, with gloo."""
    client = make_client()
    body = task_body("ddp", tiny_model_dir, dataset_dir, max_steps=300, save_steps=1000,
                     per_device_train_batch_size=2) | {"gpuConfig": {"cuda_visible_devices": "0,1"}}
    task_id = client.post("/finetuning/createTask", json=body).json()["id"]
    task = _wait_for_step(client, task_id, 2)
    assert "torch.distributed.run" in task["command"] and "--nproc_per_node 2" in task["command"]
    assert task["devices"] == [0, 1]
    assert all(d["busy"] for d in client.get("/system/gpus").json()["devices"])
    client.post("/finetuning/stopTask", json={"id": task_id})
    stopped = wait_for(client, task_id, {"stopped", "failed"})
    assert stopped["status"] == "stopped", stopped["errorMessage"]
    assert stopped["checkpoints"] and stopped["checkpoints"][-1]["step"] == stopped["step"]
    assert _exit_code(client, task_id) == 0  # torchrun's ranks were asked to stop; torchrun itself was not signalled
