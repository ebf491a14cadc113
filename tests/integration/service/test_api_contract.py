"""The API's typed boundary: every JSON route declares the model of its body (so /openapi.json documents what is
sent), the documentation reads as a user's, and the wire keys stay those the console and the CLI read."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.routing import APIRoute

from tuneforge.api.app import create_app
from tuneforge.settings import Settings

# Routes whose body no model of ours describes: a Server-Sent Events stream, and the OpenAI gateway that relays
# the serving engine's own answer.
UNDECLARED = {"/finetuning/streamTask", "/v1/chat/completions"}


@pytest.fixture()
def app(tmp_path: Path):
    return create_app(Settings(home=tmp_path / "home"), run_scheduler=False)


def test_every_json_route_declares_its_response_model(app):
    routes = [r for r in app.routes if isinstance(r, APIRoute)]
    missing = [r.path for r in routes if r.response_model is None and r.path not in UNDECLARED]
    assert missing == []
    spec = app.openapi()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            success = next(code for code in operation["responses"] if code.startswith("2"))
            schema = operation["responses"][success].get("content", {}).get("application/json", {}).get("schema")
            assert path in UNDECLARED or schema not in (None, {}), (method, path)


def test_the_documentation_names_no_seed_or_issue_numbers(app):
    text = json.dumps(app.openapi(), ensure_ascii=False)
    assert re.findall(r"(?i)\bseed 0\d\d|\bseed's\b|\bissue #?\d+", text) == []


def test_device_inventory_keeps_its_wire_keys(make_client):
    client = make_client(run_scheduler=False)
    inventory = client.get("/system/gpus").json()
    assert list(inventory) == ["kind", "devices", "queued"]
    # keys are only ever added, at the end: `holder` names whatever holds the device (task, evaluation, deployment)
    assert list(inventory["devices"][0]) == ["index", "kind", "name", "totalMemory", "freeMemory", "busy", "task",
                                             "holder"]
    assert client.get("/health").json() == {"status": "ok"}
    tasks = client.get("/finetuning/getTaskList").json()
    assert tasks == {"total": 0, "page": 1, "pageSize": 20, "items": []}
    assert client.get("/v1/models").json() == {"object": "list", "data": []}
