"""50 concurrent createTask calls → 50 tasks, none lost, never more running than there are slots.

The workers here are a stand-in process that speaks the run-directory contract (started → progress → completed)
in a fraction of a second: this test is about the queue, the API and the store under load, not about training."""

from __future__ import annotations

import stat
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.fixtures.auth import as_local_admin
from tests.fixtures.polling import until
from tests.integration.service.conftest import task_body
from tuneforge.api.app import create_app
from tuneforge.schemas.tasks import ACTIVE_STATUSES
from tuneforge.service.platform import Platform
from tuneforge.service.runtime.executor import LocalExecutor
from tuneforge.store import Task

STAND_IN = '''#!{python}
import sys, time
from pathlib import Path
from tuneforge.rundir import EventWriter
run = Path(sys.argv[-1])
events = EventWriter(run / "events.jsonl")
events.emit("started", pid=0, total_steps=2)
for step in (1, 2):
    time.sleep(0.1)
    events.emit("progress", step=step, total_steps=2, loss=1.0 / step, tokens_seen=10 * step)
events.emit("completed", step=2, output_dir=None, metrics={{"train_loss": 0.5}})
'''


def test_fifty_concurrent_creates_are_all_kept_and_never_overbook(settings, tiny_model_dir, dataset_dir, tmp_path):
    fake_python = tmp_path / "stand-in-worker"
    fake_python.write_text(STAND_IN.format(python=sys.executable))
    fake_python.chmod(fake_python.stat().st_mode | stat.S_IEXEC)
    platform = Platform(settings, executor=LocalExecutor(python=str(fake_python)))
    peak, overbooked, done = [0], [], threading.Event()

    def watch() -> None:
        while not done.is_set():
            with platform.db.session() as session:
                rows = session.scalars(select(Task.devices).where(Task.status.in_(("running", "stopping")))).all()
            used = [i for devices in rows for i in devices]
            if len(used) != len(set(used)):
                overbooked.append(used)
            peak[0] = max(peak[0], len(rows))
            time.sleep(0.02)

    with TestClient(create_app(settings, platform)) as client:
        as_local_admin(client)
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        body = task_body("x", tiny_model_dir, dataset_dir)
        with ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(lambda i: client.post("/finetuning/createTask", json={**body, "name": f"q-{i}"})
                                  .status_code, range(50)))
        assert codes == [201] * 50

        def all_ended() -> bool:
            with platform.db.session() as session:
                return session.scalar(select(func.count()).where(Task.status.in_(ACTIVE_STATUSES))) == 0

        try:  # 50 worker processes, two at a time, on a loaded machine: a generous deadline; the wait ends once done
            until(all_ended, "all 50 tasks run and ended (none left pending or running)", timeout=600, every=0.2)
        finally:
            done.set()
            watcher.join()
        listed = client.get("/finetuning/getTaskList", params={"pageSize": 100}).json()
    assert listed["total"] == 50 and {t["name"] for t in listed["items"]} == {f"q-{i}" for i in range(50)}
    assert all(t["status"] == "completed" and t["progress"] == 100 for t in listed["items"]), \
        [(t["name"], t["status"]) for t in listed["items"] if t["status"] != "completed"]
    assert 1 <= peak[0] <= 2, peak  # two CPU slots
    assert not overbooked, f"a device was given to two tasks at once: {overbooked[:3]}"
