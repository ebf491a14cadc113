"""The system page names what holds each GPU — a task, an evaluation or a deployment — and links to it."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from tests.fixtures.auth import as_local_admin
from tuneforge.planning.devices import Device
from tuneforge.service.platform import Platform
from tuneforge.settings import Settings
from tuneforge.store import Deployment, Evaluation, RegisteredModel, Task
from tuneforge.web.app import create_console_app


def test_each_gpu_shows_its_holder_with_a_link(tmp_path: Path) -> None:
    gpus = [Device(index=i, kind="cuda", name="Fake H100", total_memory=80 * 2**30, free_memory=60 * 2**30)
            for i in range(4)]
    settings = Settings(home=tmp_path / "home", allowed_roots=[tmp_path])
    platform = Platform(settings, devices=gpus)
    with platform.db.session() as session:
        model = RegisteredModel(name="qa-lora", kind="base", source="bundled")
        session.add(model)
        session.flush()
        session.add_all([
            Task(name="training", base_model="m", dataset="d", output_path=str(tmp_path / "o"), stage="sft",
                 finetuning_type="lora", training_args={}, status="running", devices=[0]),
            Evaluation(model_id=model.id, dataset="identity", status="running", devices=[1]),
            Deployment(name="chat", model_id=model.id, status="running", devices=[2])])
    try:
        with TestClient(create_console_app(settings, platform, run_scheduler=False)) as client:
            html = as_local_admin(client).get("/console/system").text
    finally:
        platform.close()
    rows = dict(re.findall(r'<tr data-device="(\d)" data-busy="\w+">(.*?)</tr>', html, re.S))
    assert re.search(r'data-holder="task-1"><a href="/console/tasks/1">training</a>', rows["0"])
    assert re.search(r'data-holder="evaluation-1"><a href="/console/evaluations/1">Evaluation 1 · qa-lora</a>',
                     rows["1"])
    assert re.search(r'data-holder="deployment-1"><a href="/console/deployments/1">Deployment chat</a>', rows["2"])
    assert "data-holder" not in rows["3"] and 'data-busy="false"' in html
