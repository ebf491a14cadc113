"""A worker that ignores SIGTERM is killed after the grace period, and the task says so."""

from __future__ import annotations

import stat
import sys
import time

import pytest
from fastapi.testclient import TestClient

from tests.fixtures.auth import as_local_admin
from tests.fixtures.polling import until
from tests.integration.service.conftest import service_settings, task_body, wait_for
from tuneforge.api.app import create_app
from tuneforge.service.platform import Platform
from tuneforge.service.runtime.executor import LocalExecutor

STUBBORN = '''#!{python}
import signal, sys, time
from pathlib import Path
from tuneforge.rundir import EventWriter
signal.signal(signal.SIGTERM, signal.SIG_IGN)
events = EventWriter(Path(sys.argv[-1]) / "events.jsonl")
events.emit("started", pid=0, total_steps=1000)
step = 0
while True:
    step += 1
    events.emit("progress", step=step, total_steps=1000, loss=1.0)
    time.sleep(0.2)
'''


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_worker_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path, tiny_model_dir, dataset_dir,
                                                                        database_url):
    stubborn = tmp_path / "stubborn-worker"
    stubborn.write_text(STUBBORN.format(python=sys.executable))
    stubborn.chmod(stubborn.stat().st_mode | stat.S_IEXEC)
    settings = service_settings(tmp_path, tiny_model_dir, database_url, stop_grace_s=1.5)
    platform = Platform(settings, executor=LocalExecutor(python=str(stubborn)))
    with TestClient(create_app(settings, platform)) as client:
        as_local_admin(client)
        task_id = client.post("/finetuning/createTask", json=task_body("stubborn", tiny_model_dir,
                                                                       dataset_dir)).json()["id"]
        until(lambda: client.get("/finetuning/getTask", params={"id": task_id}).json()["step"] >= 2,
              "the stubborn worker reported two steps")
        asked = time.monotonic()
        assert client.post("/finetuning/stopTask", json={"id": task_id}).json()["status"] == "stopping"
        task = wait_for(client, task_id, {"stopped", "failed"})
        # Not before the grace period; how long after it depends on the machine, so only the kill is asserted.
        assert task["status"] == "stopped" and time.monotonic() - asked >= 1.5
        assert "killed" in task["errorMessage"] and task["exitCode"] == -9
