"""Property-based tests of the whole HTTP API: whatever a client sends, the server answers with a status the OpenAPI
document declares, a body that matches it, and never a 5xx.

- schemathesis generates requests (valid and invalid) from the app's own OpenAPI document and checks each answer.
- a hypothesis test sends the values that broke servers before (2^63, NUL bytes, ~user paths, over-long path
  components, odd URI schemes, LIKE wildcards) to every parameter of every route.

Both run against the ASGI app on a temporary home with an empty database and no scheduler
(run_scheduler=False), so createTask only records a pending task and nothing trains. Operations that start
processes or reach the network are left out: createDeployment / startDeployment (serving processes),
registerModel (a model import may convert or download weights), exportModel and createEvaluation (background job
processes), /v1/chat/completions (relays to a serving process), and streamTask (an open-ended stream; its 404 is
tested in test_api_limits.py). Examples are bounded so the module takes a minute or two on two cores.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.fixtures.auth import bearer
from tests.integration.service.conftest import service_settings
from tuneforge.api.app import create_app
from tuneforge.service.platform import Platform

EXCLUDED = (r"^/deployments/(createDeployment|startDeployment)$|^/models/(registerModel|exportModel)$"
            r"|^/evaluations/createEvaluation$|^/v1/chat/completions$|^/finetuning/streamTask$")
SENT = {"requests": 0}
# Per operation and mode; raise it for a longer hunt (TUNEFORGE_FUZZ_EXAMPLES=200 sends ~15,000 requests).
EXAMPLES = int(os.environ.get("TUNEFORGE_FUZZ_EXAMPLES", "45"))
# positive_data_acceptance is left out: a schema-valid request may still be refused for what a schema cannot say
# (the model named does not exist, the name is taken), and a 404 / 422 then is the right answer.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance, negative_data_rejection]


@pytest.fixture()
def fuzz_app(tmp_path: Path, database_url: str) -> Iterator[FastAPI]:
    """The app on a fresh home (SQLite, and PostgreSQL when configured: its 32-bit ids overflow differently); the
    TestClient context runs its lifespan (schemathesis' own client does not)."""
    home_settings = service_settings(tmp_path, tmp_path / "models" / "none", database_url)
    platform = Platform(home_settings)
    app = create_app(home_settings, platform, run_scheduler=False)
    app.state.fuzz_headers = bearer(home_settings)  # every generated request carries the local admin's key
    with TestClient(app):
        yield app
    platform.close()


def test_every_answer_is_declared_and_no_5xx(fuzz_app: FastAPI) -> None:
    """Each operation gets its own budget of valid and of invalid requests; every failure is collected, then
    reported together. (schemathesis' pytest plugin does not run under pytest 9 yet, so hypothesis drives it.)"""
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app).exclude(path_regex=EXCLUDED)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, fuzz_app.state.fuzz_headers)
            except Unsatisfiable:
                pass  # an operation without parameters or body has no invalid request to send
            except (Exception, BaseExceptionGroup) as exc:  # keep going: report every operation at the end
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    print(f"schemathesis sent {SENT['requests']} requests")  # shown with -s: the figure the fuzz bar counts
    assert not failures, "\n\n".join(failures)


def _fuzz(operation: Any, mode: GenerationMode, headers: dict[str, str]) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
              database=None)
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        SENT["requests"] += 1
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()


# -- the values that crash servers, on every parameter of every route ------------------------------------------------

NASTY = [str(2**63), str(2**64), str(-(2**63) - 1), "9" * 5000, "0", "-1", "a\x00b", "~nosuchuser-xyz/data.jsonl",
         "/tmp/" + "a" * 256, "/" + "a/" * 2100, "hf://datasets/x/y", "http://127.0.0.1:9/a.jsonl",
         "file:///etc/passwd", "zip::s3://bucket/a.zip", "%", "_", "%_%", "", " ", "null", "[]", "{}", "é" * 300]


def _operations(app: FastAPI) -> list[tuple[str, str, list[str], bool]]:
    """(method, path, query parameter names, takes a JSON body) of every route the fuzz test may call."""
    document = app.openapi()
    found = []
    for path, operations in document["paths"].items():
        if re.search(EXCLUDED, path):
            continue
        for method, operation in operations.items():
            names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
            content = operation.get("requestBody", {}).get("content", {})
            found.append((method.upper(), path, names, "application/json" in content))
    return found


def _body(fields: list[str], value: str) -> dict[str, Any]:
    as_number: Any = int(value) if re.fullmatch(r"-?\d{1,30}", value) else value
    return {field: as_number for field in fields}


TRAINING_PATHS = ["adapter_name_or_path", "deepspeed", "tokenized_path", "dataset_dir", "output_dir", "dataset",
                  "model_name_or_path", "resume_from_checkpoint", "template"]
BODY_FIELDS = ["id", "name", "description", "ownerId", "baseModel", "datasetPath", "outputPath", "experimentId",
               "modelId", "taskId", "source", "dataset", "outputDir"]


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(data=st.data())
def test_nasty_values_on_every_route_are_4xx(fuzz_app: FastAPI, data: st.DataObject) -> None:
    client = TestClient(fuzz_app, headers=fuzz_app.state.fuzz_headers)
    method, path, names, takes_json = data.draw(st.sampled_from(_operations(fuzz_app)))
    value = data.draw(st.sampled_from(NASTY))
    params = {name: data.draw(st.sampled_from([value, *NASTY])) for name in names}
    kwargs: dict[str, Any] = {"params": params}
    if takes_json:
        kwargs["json"] = _body(data.draw(st.lists(st.sampled_from(BODY_FIELDS), max_size=4, unique=True)), value)
        if data.draw(st.booleans()):
            kwargs["json"]["trainingArgs"] = {data.draw(st.sampled_from(TRAINING_PATHS)): value}
    response = client.request(method, path, **kwargs)
    SENT["requests"] += 1
    assert response.status_code < 500, (method, path, kwargs, response.text)
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["code"] and error["message"], response.text
    documented = fuzz_app.openapi()["paths"][path][method.lower()]["responses"]
    assert str(response.status_code) in documented, (method, path, response.status_code, response.text)


def test_report_requests_sent() -> None:
    """Not a check: prints how many requests the property tests above sent (run with -s to see it)."""
    print(f"\nfuzz requests sent: {SENT['requests']}")
