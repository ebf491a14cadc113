"""`kill -9` of the server mid-run: the worker keeps training, a restarted server re-attaches to it, and the task
completes with a metric series that has no gap and no duplicate.

The worker is held at a LogGate (tests/e2e/log_gate.py) and let through a few logged steps at a time, so it is
mid-run at every point the test needs it to be, however fast or slow the machine: never finished before the server is
restarted, never still at the step it was at when the server died."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.log_gate import LogGate
from tests.fixtures.polling import until
from tests.integration.service.conftest import task_body
from tuneforge.settings import Settings

STEPS = 60
UNWATCHED = 5  # logged steps (at least) the worker trains on while no server runs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(tmp_path: Path, model_dir: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "TUNEFORGE_HOME": str(tmp_path / "home"), "TUNEFORGE_CPU_SLOTS": "1",
           "TUNEFORGE_ALLOWED_ROOTS": json.dumps([str(tmp_path), str(model_dir.parent)]),
           "TUNEFORGE_POLL_INTERVAL_S": "0.2", "TUNEFORGE_PORT": str(port)}
    env.pop("TUNEFORGE_DATABASE_URL", None)
    log = (tmp_path / f"server-{time.time_ns()}.log").open("w")  # one log per start, however quick the restart
    server = subprocess.Popen([sys.executable, "-m", "tuneforge.cli.main", "serve"], env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300  # a Python process importing torch on a loaded machine; returns once it answers
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.kill()
    raise AssertionError(f"the server did not start (exit code {server.poll()}): {log.name}")


def _get(port: int, task_id: int, headers: dict[str, str]) -> dict:
    return httpx.get(f"http://127.0.0.1:{port}/finetuning/getTask", params={"id": task_id}, timeout=60,
                     headers=headers).json()


def _wait_step(port: int, task_id: int, headers: dict[str, str], step: int) -> dict:
    """The task once the server reports it at `step` or later; fails at once if it ends instead."""
    def reached() -> dict | None:
        task = _get(port, task_id, headers)
        assert task["status"] in ("pending", "running"), task
        return task if (task["step"] or 0) >= step else None
    return until(reached, f"task {task_id} reaching step {step}")


def _let_through(gate: LogGate, steps: int, timeout: float = 300) -> int:
    """Lets the held worker log `steps` steps in all, then holds it again: it opens the FIFO anew for every logged step
    and each open waits for a reader. The highest step it logged (a busy reader may take a step or two more in one
    read): the worker reported it, and is now held at a later one."""
    logged: list[int] = []

    def read() -> None:
        while max(logged, default=0) < steps:
            with gate.path.open(encoding="utf-8") as fifo:  # blocks until the worker opens it to log a step
                logged.extend(json.loads(line)["current_steps"] for line in fifo.read().splitlines())

    reader = threading.Thread(target=read, name="let-through", daemon=True)
    reader.start()
    reader.join(timeout)
    assert not reader.is_alive(), f"the worker logged only steps {logged} of {steps} within {timeout} s"
    return max(logged)


@pytest.mark.slow
def test_a_server_killed_mid_run_loses_nothing(tmp_path, tiny_model_dir, dataset_dir):
    port = _free_port()
    server = _start_server(tmp_path, tiny_model_dir, port)
    headers = {"Authorization": f"Bearer {(tmp_path / 'home' / 'local-admin.key').read_text().strip()}"}
    gate = LogGate(Settings(home=tmp_path / "home").runs_path / "task-1")  # the server's first task
    worker_pid = None
    try:
        body = task_body("survivor", tiny_model_dir, dataset_dir, max_steps=STEPS, save_steps=1000)
        task_id = httpx.post(f"http://127.0.0.1:{port}/finetuning/createTask", json=body, timeout=60,
                             headers=headers).json()["id"]
        assert task_id == 1, "the gate is at task-1's run directory"
        worker_pid = _wait_step(port, task_id, headers, 1)["pid"]  # reported step 1, held logging it
        server.send_signal(signal.SIGKILL)
        server.wait()
        last_unwatched = _let_through(gate, UNWATCHED)  # the worker trains on with nobody watching, then is held
        assert UNWATCHED <= last_unwatched < STEPS
        os.kill(worker_pid, 0)  # still alive (raises if not)
        server = _start_server(tmp_path, tiny_model_dir, port)
        # the new server re-attached to the live worker and read what it reported while no server ran
        resumed = _wait_step(port, task_id, headers, last_unwatched)
        assert resumed["status"] == "running" and resumed["pid"] == worker_pid, resumed
        gate.release()
        task = until(lambda: (t := _get(port, task_id, headers))["status"] not in ("pending", "running") and t,
                     f"task {task_id} ending", timeout=600)
        assert task["status"] == "completed", task["errorMessage"]
        assert task["pid"] == worker_pid and task["step"] == STEPS and task["progress"] == 100
        series = httpx.get(f"http://127.0.0.1:{port}/finetuning/getTaskMetrics", params={"id": task_id},
                           timeout=60, headers=headers).json()
        assert [step for step, _ in series["loss"]] == list(range(1, STEPS + 1))
    finally:
        server.kill()
        server.wait()
        if worker_pid is not None:  # never leave a worker training behind a failed assertion
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker_pid, signal.SIGKILL)
        gate.release()  # nor a thread waiting at the gate
        gate.close()
