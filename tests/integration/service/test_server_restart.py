"""`kill -9` of the server mid-run: the worker keeps training, a restarted server re-attaches to it, and the task
completes with a metric series that has no gap and no duplicate."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.service.conftest import task_body


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(tmp_path: Path, model_dir: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "TUNEFORGE_HOME": str(tmp_path / "home"), "TUNEFORGE_CPU_SLOTS": "1",
           "TUNEFORGE_ALLOWED_ROOTS": json.dumps([str(tmp_path), str(model_dir.parent)]),
           "TUNEFORGE_POLL_INTERVAL_S": "0.2", "TUNEFORGE_PORT": str(port)}
    env.pop("TUNEFORGE_DATABASE_URL", None)
    log = (tmp_path / f"server-{time.time():.0f}.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "tuneforge.cli.main", "serve"], env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.kill()
    raise AssertionError(f"the server did not start: {log.name}")


def _get(port: int, task_id: int, headers: dict[str, str]) -> dict:
    return httpx.get(f"http://127.0.0.1:{port}/finetuning/getTask", params={"id": task_id}, timeout=10,
                     headers=headers).json()


@pytest.mark.slow
def test_a_server_killed_mid_run_loses_nothing(tmp_path, tiny_model_dir, dataset_dir):
    port = _free_port()
    server = _start_server(tmp_path, tiny_model_dir, port)
    headers = {"Authorization": f"Bearer {(tmp_path / 'home' / 'local-admin.key').read_text().strip()}"}
    worker_pid = None
    try:
        body = task_body("survivor", tiny_model_dir, dataset_dir, max_steps=60, save_steps=1000)
        task_id = httpx.post(f"http://127.0.0.1:{port}/finetuning/createTask", json=body, timeout=30,
                             headers=headers).json()["id"]
        deadline = time.monotonic() + 120
        while (task := _get(port, task_id, headers))["step"] < 3:
            assert time.monotonic() < deadline and task["status"] in ("pending", "running"), task
            time.sleep(0.1)
        worker_pid = task["pid"]
        server.send_signal(signal.SIGKILL)
        server.wait()
        time.sleep(2)  # the worker trains on with nobody watching
        os.kill(worker_pid, 0)  # still alive (raises if not)
        server = _start_server(tmp_path, tiny_model_dir, port)
        deadline = time.monotonic() + 180
        while (task := _get(port, task_id, headers))["status"] in ("pending", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.3)
        assert task["status"] == "completed", task["errorMessage"]
        assert task["pid"] == worker_pid and task["step"] == 60 and task["progress"] == 100
        series = httpx.get(f"http://127.0.0.1:{port}/finetuning/getTaskMetrics", params={"id": task_id},
                           headers=headers).json()
        assert [step for step, _ in series["loss"]] == list(range(1, 61))
    finally:
        server.kill()
        server.wait()
        if worker_pid is not None:  # never leave a worker training behind a failed assertion
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker_pid, signal.SIGKILL)
