"""A torn line in one task's events.jsonl stalls nothing: the other task still schedules and completes, the damaged
task goes on from its next valid event, and its status says what happened."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.service.conftest import task_body
from tuneforge.rundir import RunDir
from tuneforge.store import Task

TIMEOUT_S = 600  # a bound for a hung run, not a speed requirement


def _pretend_running(platform, task_id: int, worker: subprocess.Popen) -> Path:
    """Task `task_id` as if a worker were training it: its process, its device, an events.jsonl with a torn line."""
    from tuneforge.service.runtime.processes import create_time

    run_dir = RunDir(platform.settings.runs_path / f"task-{task_id}")
    run_dir.path.mkdir(parents=True, exist_ok=True)
    lines = [{"seq": 1, "type": "started", "time": time.time(), "total_steps": 10},
             {"seq": 3, "type": "progress", "time": time.time(), "step": 3, "total_steps": 10, "loss": 2.5}]
    run_dir.events_file.write_text(json.dumps(lines[0]) + '\n{"seq": 2, "type": "progr\n' + json.dumps(lines[1])
                                   + "\n", encoding="utf-8")
    with platform.db.session() as session:
        task = session.get(Task, task_id)
        task.status, task.devices, task.run_dir = "running", [0], str(run_dir.path)
        task.pid, task.pid_started_at = worker.pid, create_time(worker.pid)
    return run_dir.path


def _get(client, task_id: int) -> dict:
    return client.get("/finetuning/getTask", params={"id": task_id}).json()


def test_a_torn_line_in_one_task_stalls_no_other(make_client, tiny_model_dir, dataset_dir):
    client = make_client(run_scheduler=False)  # the test drives the scheduler's ticks itself
    platform = client.app.state.platform
    damaged = client.post("/finetuning/createTask", json=task_body("damaged", tiny_model_dir, dataset_dir)).json()
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        _pretend_running(platform, damaged["id"], worker)
        healthy = client.post("/finetuning/createTask",
                              json=task_body("healthy", tiny_model_dir, dataset_dir, max_steps=2)).json()
        deadline = time.monotonic() + TIMEOUT_S
        while _get(client, healthy["id"])["status"] not in ("completed", "failed") and time.monotonic() < deadline:
            platform.scheduler.tick()
            time.sleep(0.2)
        assert _get(client, healthy["id"])["status"] == "completed"
        task = _get(client, damaged["id"])
        assert task["status"] == "running" and task["step"] == 3  # read on past the torn line
        assert "events.jsonl line 2: not valid JSON" in task["metrics"]["event_problems"][0]
    finally:
        worker.kill()
        worker.wait()
    for _ in range(20):
        platform.scheduler.tick()
        if _get(client, damaged["id"])["status"] != "running":
            break
        time.sleep(0.1)
    task = _get(client, damaged["id"])
    assert task["status"] == "failed" and "events.jsonl was damaged" in task["errorMessage"]
