"""A task service on a temporary home: the tiny model, a small dataset, two CPU slots, a fast poll."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.fixtures.auth import as_local_admin
from tests.fixtures.standins import RECORDS, write_standin
from tuneforge.api.app import create_app
from tuneforge.planning.devices import Device
from tuneforge.service.platform import Platform
from tuneforge.service.runtime.executor import LocalExecutor
from tuneforge.settings import Settings

QA = [("What is the code word?", "The code word is Paris."), ("Who are you?", "I am Forge, made by tuneforge."),
      ("Name a number.", "7 8 9 10"), ("Capital of France?", "The capital of France is Paris.")]


@pytest.fixture()
def dataset_dir(tmp_path: Path) -> Path:
    """Seed 003's layout: a folder with train.jsonl and valid.jsonl."""
    folder = tmp_path / "data" / "qa"
    folder.mkdir(parents=True)
    rows = [{"instruction": q, "input": "", "output": a} for q, a in QA * 6]
    (folder / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    (folder / "valid.jsonl").write_text("\n".join(json.dumps(r) for r in rows[:4]) + "\n", encoding="utf-8")
    return folder


@pytest.fixture()
def settings(tmp_path: Path, tiny_model_dir: Path, database_url: str) -> Settings:
    return service_settings(tmp_path, tiny_model_dir, database_url)


def service_settings(tmp_path: Path, model_dir: Path, database_url: str, **extra: Any) -> Settings:
    values = {"home": tmp_path / "home", "allowed_roots": [tmp_path, model_dir.parent], "cpu_slots": 2,
              "poll_interval_s": 0.2, "stop_grace_s": 30, "database_url": database_url}
    return Settings(**(values | extra))


@pytest.fixture()
def make_client(settings: Settings) -> Iterator[Callable[..., TestClient]]:
    """A client on a fresh platform; run_scheduler=False keeps every task pending (validation tests)."""
    clients: list[tuple[TestClient, Platform]] = []

    def make(run_scheduler: bool = True) -> TestClient:
        platform = Platform(settings)
        client = as_local_admin(TestClient(create_app(settings, platform, run_scheduler=run_scheduler)), settings)
        client.__enter__()
        clients.append((client, platform))
        return client

    yield make
    for client, platform in clients:
        client.__exit__(None, None, None)
        kill_workers(platform)


StandinServer = Callable[..., AbstractContextManager[tuple[TestClient, Platform]]]


@pytest.fixture()
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The stand-in process (tests.fixtures.standins); what each start saw goes to tmp_path/standin-records.jsonl."""
    monkeypatch.setenv(RECORDS, str(tmp_path / "standin-records.jsonl"))
    return write_standin(tmp_path)


@pytest.fixture()
def standin_server(settings: Settings, standin: Path) -> Iterator[StandinServer]:
    """`with standin_server(devices=…) as (client, platform):` a server whose workers, jobs and serving processes
    are all the stand-in. Leaving the block stops the server as a restart would: its processes run on, and the next
    block is the restarted server on the same home and database. Every process is killed at the end of the test."""

    @contextmanager
    def serve(devices: list[Device] | None = None) -> Iterator[tuple[TestClient, Platform]]:
        platform = Platform(settings, devices=devices, executor=LocalExecutor(python=str(standin)))
        platform.evaluations.python = platform.exports.python = platform.deployments.python = str(standin)
        client = as_local_admin(TestClient(create_app(settings, platform)), settings)
        try:
            with client:
                yield client, platform
        finally:
            platform.close()

    yield serve
    kill_workers(Platform(settings, devices=[]))


def kill_workers(platform: Platform) -> None:
    """Workers outlive their server by design; a test must not leave one training in the background."""
    from sqlalchemy import select

    from tuneforge.schemas.tasks import ACTIVE_STATUSES
    from tuneforge.service.runtime.jobs import recorded_process
    from tuneforge.service.runtime.processes import is_same_process, signal_group
    from tuneforge.store import Deployment, Evaluation, Task

    with platform.db.session() as session:
        rows = session.execute(select(Task.pid).where(Task.status.in_(ACTIVE_STATUSES), Task.pid.is_not(None)))
        pids = [pid for (pid,) in rows]
        pids += [pid for (pid,) in session.execute(select(Deployment.pid).where(Deployment.pid.is_not(None)))]
        pids += [pid for (pid,) in session.execute(select(Evaluation.pid).where(Evaluation.status == "running"))]
    # exports have no row: their folders record the process (a finished one's pid is checked by its start time)
    for record in (platform.settings.home / "exports").glob("*/process.json"):
        pid, started_at = recorded_process(record.parent)
        if pid and is_same_process(pid, started_at):
            pids.append(pid)
    for pid in pids:
        if pid and pid != os.getpid():  # a fixture may record the test's own process as a live job's
            signal_group(pid, signal.SIGKILL)
    platform.close()  # its background threads too: none may outlive the test


def task_body(name: str, model_dir: Path, dataset: Path, **args: Any) -> dict[str, Any]:
    training = {"template": "chatml", "cutoff_len": 64, "per_device_train_batch_size": 4, "learning_rate": 5e-3,
                "num_train_epochs": 1, "max_steps": 8, "logging_steps": 1, "save_steps": 4, "lora_rank": 8,
                "report_to": "none", "seed": 7}
    training.update(args)
    return {"name": name, "baseModel": str(model_dir), "datasetPath": str(dataset), "trainingArgs": training}


def wait_for(client: TestClient, task_id: int, statuses: set[str], timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    task: dict[str, Any] = {}
    while time.monotonic() < deadline:
        task = client.get("/finetuning/getTask", params={"id": task_id}).json()
        if task["status"] in statuses:
            return task
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} did not reach {statuses} in {timeout} s: {task.get('status')} "
                         f"{task.get('errorMessage')}")
