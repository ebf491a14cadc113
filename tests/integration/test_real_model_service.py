"""Issue 6's bar with the real bundled model: the demo fine-tune run as a task → publish → deploy → the official
`openai` client asks "Who are you?" and the answer names the new identity, streamed and not; then an evaluation of
the published model beside its base reports the change."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from tests.fixtures.auth import env_headers
from tests.fixtures.live_server import live_server
from tests.integration.service.conftest import wait_for
from tuneforge.cli.demo import QUESTION, demo_config
from tuneforge.settings import Settings

pytestmark = pytest.mark.slow


def _until(client: httpx.Client, path: str, item_id: int, done: set[str], timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = client.get(path, params={"id": item_id}).json()
        if data["status"] in done:
            return data
        time.sleep(0.5)
    raise AssertionError(f"{path} {item_id} never reached {done}: {data}")


def test_demo_task_published_deployed_answers_as_forge_through_openai(tmp_path: Path) -> None:
    import openai

    settings = Settings(home=tmp_path / "home", allowed_roots=[tmp_path], cpu_slots=1, poll_interval_s=0.2,
                        database_url=f"sqlite:///{tmp_path}/tf.db")
    args = {k: v for k, v in demo_config(tmp_path / "unused").items()
            if k not in ("model_name_or_path", "dataset", "dataset_dir", "output_dir", "overwrite_output_dir")}
    with live_server(settings) as (url, _):
        client = httpx.Client(base_url=url, timeout=300, headers=env_headers())
        created = client.post("/finetuning/createTask", json={
            "name": "forge-demo", "baseModel": "bundled", "datasetPath": "identity", "trainingArgs": args})
        assert created.status_code == 201, created.text
        task = wait_for(client, created.json()["id"], {"completed", "failed"}, timeout=900)
        assert task["status"] == "completed", task

        model = client.post("/models/publishModel", json={"taskId": task["id"], "name": "forge"})
        assert model.status_code == 201, model.text
        deployment = client.post("/deployments/createDeployment", json={
            "name": "forge", "modelId": model.json()["id"]})
        assert deployment.status_code == 201, deployment.text
        assert _until(client, "/deployments/getDeployment", deployment.json()["id"], {"running", "failed"},
                      600)["status"] == "running"

        oai = openai.OpenAI(base_url=f"{url}/v1", api_key=os.environ["TUNEFORGE_API_KEY"])
        question = [{"role": "user", "content": QUESTION}]
        answer = oai.chat.completions.create(model="forge", messages=question, max_tokens=40, temperature=0)
        text = answer.choices[0].message.content
        streamed = "".join(chunk.choices[0].delta.content or "" for chunk in oai.chat.completions.create(
            model="forge", messages=question, max_tokens=40, temperature=0, stream=True) if chunk.choices)
        assert "Forge" in text and streamed == text, (text, streamed)

        evaluation = client.post("/evaluations/createEvaluation", json={
            "modelId": model.json()["id"], "split": "train", "maxSamples": 6, "maxNewTokens": 24})
        assert evaluation.status_code == 201, evaluation.text
        report = _until(client, "/evaluations/getEvaluation", evaluation.json()["id"],
                        {"completed", "failed", "stopped"}, 600)
        assert report["status"] == "completed", report
        base, tuned = report["report"]["models"]
        assert (base["label"], tuned["label"]) == ("base", "forge")
        assert tuned["eval_loss"] < base["eval_loss"] and tuned["rouge_l"] > base["rouge_l"], report["report"]
