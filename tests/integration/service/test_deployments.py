"""Publish → deploy → the official `openai` client answers through the server's /v1 gateway, streamed and not;
a crashed serving process is restarted and its status says so; bad input is a clear 4xx."""

from __future__ import annotations

import os
import signal

import pytest

from tests.fixtures.auth import env_headers
from tests.fixtures.live_server import live_server
from tests.fixtures.polling import until
from tests.integration.service.conftest import service_settings, task_body, wait_for


@pytest.fixture()
def server(tmp_path, tiny_model_dir):
    """A real HTTP server (the openai client needs one): API, scheduler and the deployment watcher."""
    with live_server(service_settings(tmp_path, tiny_model_dir, f"sqlite:///{tmp_path}/tf.db")) as running:
        yield running


def _deployment(client, deployment_id: int) -> dict:
    return client.get("/deployments/getDeployment", params={"id": deployment_id}).json()


def _wait_status(client, deployment_id: int, wanted: set[str], timeout: float = 300) -> dict:
    return until(lambda: (data := _deployment(client, deployment_id))["status"] in wanted and data,
                 f"deployment {deployment_id} reaching {wanted}", timeout)


@pytest.mark.slow
def test_publish_deploy_chat_with_openai_and_restart_on_crash(server, tiny_model_dir, dataset_dir):
    import httpx
    import openai

    url, _ = server
    client = httpx.Client(base_url=url, timeout=60, headers=env_headers())
    task = client.post("/finetuning/createTask", json=task_body("to-serve", tiny_model_dir, dataset_dir,
                                                                max_steps=4)).json()
    assert wait_for(client, task["id"], {"completed", "failed"})["status"] == "completed"
    model = client.post("/models/publishModel", json={"taskId": task["id"], "name": "tiny-qa"}).json()
    deployment = client.post("/deployments/createDeployment", json={"name": "tiny-qa-live", "modelId": model["id"]})
    assert deployment.status_code == 201, deployment.text
    running = _wait_status(client, deployment.json()["id"], {"running", "failed"})
    assert running["status"] == "running", running

    oai = openai.OpenAI(base_url=f"{url}/v1", api_key=os.environ["TUNEFORGE_API_KEY"])
    listed = {m.id: m.loaded for m in oai.models.list().data}  # type: ignore[attr-defined]
    assert listed.pop("smollm2-135m-instruct", False) is False  # registered, served on demand: not loaded now
    assert listed == {"tiny-qa": True, "tiny-qa-live": True}
    messages = [{"role": "user", "content": "Who are you?"}]
    answer = oai.chat.completions.create(model="tiny-qa-live", messages=messages, max_tokens=8, temperature=0)
    text = answer.choices[0].message.content
    assert isinstance(text, str) and answer.usage.completion_tokens > 0
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in oai.chat.completions.create(
        model="tiny-qa-live", messages=messages, max_tokens=8, temperature=0, stream=True) if chunk.choices)
    assert streamed == text  # greedy: the same answer either way
    assert oai.chat.completions.create(model="tiny-qa", messages=messages, max_tokens=8,  # the model's name routes
                                       temperature=0).choices[0].message.content == text  # to its deployment too
    with pytest.raises(openai.NotFoundError, match="no-such-model"):
        oai.chat.completions.create(model="no-such-model", messages=messages)
    with pytest.raises(openai.BadRequestError, match="context") as too_long:
        oai.chat.completions.create(model="tiny-qa-live", messages=[{"role": "user", "content": "word " * 5000}])
    assert too_long.value.body["code"] == "context_length_exceeded"

    os.killpg(running["pid"], signal.SIGKILL)  # the serving process crashes
    right_after = client.post("/v1/chat/completions", json={"model": "tiny-qa", "messages": messages})
    # Never a 500: 503 whether the relay or the watcher noticed first (the answer says which to do).
    assert right_after.status_code == 503 and "tiny-qa-live" in right_after.text, right_after.text
    # `restarting` lasts only until the new process answers /health, which a poll can miss; the restart count and
    # the message the watcher wrote with it stay, so wait for those instead.
    restarted = until(lambda: (data := _deployment(client, running["id"]))["restarts"] >= 1 and data,
                      "the watcher restarting the crashed deployment")
    assert restarted["status"] in ("restarting", "running"), restarted
    assert "crashed" in restarted["errorMessage"] and restarted["restarts"] == 1
    again = _wait_status(client, running["id"], {"running", "failed"})
    assert again["status"] == "running" and again["pid"] != running["pid"]
    assert oai.chat.completions.create(model="tiny-qa", messages=messages, max_tokens=8,
                                       temperature=0).choices[0].message.content == text

    in_use = client.delete("/models/deleteModel", params={"id": model["id"]})
    assert in_use.status_code == 409
    stopped = client.post("/deployments/stopDeployment", json={"id": running["id"]}).json()
    assert stopped["status"] == "stopped"
    assert client.delete("/deployments/deleteDeployment", params={"id": running["id"]}).json()["deleted"]


def test_deploying_a_model_that_does_not_exist_is_a_404(make_client):
    client = make_client(run_scheduler=False)
    response = client.post("/deployments/createDeployment", json={"name": "ghost", "modelId": 42})
    assert response.status_code == 404 and response.json()["error"]["details"][0]["field"] == "modelId"
    bad_name = client.post("/deployments/createDeployment", json={"name": "Ghost Model", "modelId": 1})
    assert bad_name.status_code == 422


def test_an_engine_this_host_lacks_is_a_422_saying_what_to_do(make_client):
    client = make_client(run_scheduler=False)
    model = client.post("/models/registerModel", json={"name": "base", "source": "bundled"})
    assert model.status_code == 201, model.text
    response = client.post("/deployments/createDeployment",
                           json={"name": "fast", "modelId": model.json()["id"], "engine": "vllm"})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "engine"
    assert client.get("/deployments/getDeploymentList").json()["total"] == 0
