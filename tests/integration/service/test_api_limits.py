"""Bounded cost and nasty values: every one is a 4xx naming the field or the limit, never a 500 and never a stall."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from tests.fixtures.auth import as_local_admin
from tests.integration.service.conftest import service_settings, task_body
from tuneforge.api.app import create_app
from tuneforge.service.platform import Platform


def _error(response) -> dict:
    assert 400 <= response.status_code < 500, response.text
    return response.json()["error"]


def _fields(response) -> set[str]:
    return {d["field"] for d in _error(response)["details"]}


@pytest.fixture()
def small_client(tmp_path, tiny_model_dir, database_url):
    """A server with small limits, so a test sends kilobytes instead of megabytes."""
    settings = service_settings(tmp_path, tiny_model_dir, database_url, max_json_body_bytes=64 * 1024,
                                max_upload_bytes=16 * 1024, max_json_keys=1000)
    platform = Platform(settings)
    with TestClient(create_app(settings, platform, run_scheduler=False)) as client:
        as_local_admin(client)
        yield client
    platform.close()


def test_a_body_over_the_limit_is_refused_by_its_content_length(small_client):
    response = small_client.post("/finetuning/createTask", content=b"{" + b" " * 70_000 + b"}",
                                 headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert _error(response)["code"] == "body_too_large" and "65536" in _error(response)["message"]


def test_a_chunked_body_over_the_limit_is_refused(small_client):
    def chunks():
        for _ in range(100):
            yield b" " * 1024

    response = small_client.post("/finetuning/createTask", content=chunks(),
                                 headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_an_upload_over_its_own_limit_is_refused(small_client):
    response = small_client.post("/datasets/createDataset", data={"name": "big"},
                                 files={"files": ("train.jsonl", b"{}\n" * 10_000)})
    assert response.status_code == 413


def test_too_many_keys_are_refused_before_parsing(small_client):
    keys = ",".join(f'"k{i}":0' for i in range(2000))
    response = small_client.post("/finetuning/createTask", content=f'{{"name":"t","trainingArgs":{{{keys}}}}}',
                                 headers={"content-type": "application/json"})
    assert response.status_code == 413 and _error(response)["code"] == "too_many_keys"


@pytest.mark.parametrize(("change", "field"), [
    ({"trainingArgs": {f"k{i}": 0 for i in range(501)}}, "trainingArgs"),
    ({"trainingArgs": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}}}, "trainingArgs"),
    ({"description": "x" * 10_001}, "description"),
    ({"datasetPath": "~nosuchuser-xyz/data.jsonl"}, "datasetPath"),
    ({"outputPath": "/tmp/" + "a" * 256}, "outputPath"),
    ({"outputPath": "/tmp/" + "a/" * 2100}, "outputPath"),
    ({"baseModel": "/tmp/model\x00"}, "baseModel"),
    ({"ownerId": 2**63}, "ownerId"),
    ({"experimentId": 2**31}, "experimentId"),
    ({"gpuConfig": {f"k{i}": 0 for i in range(501)}}, "gpuConfig"),
])
def test_nasty_body_values_name_the_field(make_client, tiny_model_dir, dataset_dir, change, field):
    client = make_client(run_scheduler=False)
    body = task_body("good-name", tiny_model_dir, dataset_dir) | change
    response = client.post("/finetuning/createTask", json=body)
    assert response.status_code == 422, response.text
    assert field in _fields(response)
    assert client.get("/finetuning/getTaskList").json()["total"] == 0


@pytest.mark.parametrize("key", ["adapter_name_or_path", "deepspeed", "tokenized_path", "dataset_dir", "output_dir"])
@pytest.mark.parametrize("value", ["~nosuchuser-xyz/a", "/tmp/" + "a" * 256, "/tmp/a\x00b", "/" + "a/" * 2100])
def test_nasty_paths_in_training_args_name_the_argument(make_client, tiny_model_dir, dataset_dir, key, value):
    client = make_client(run_scheduler=False)
    body = task_body("good-name", tiny_model_dir, dataset_dir, **{key: value})
    for route in ("/finetuning/createTask", "/finetuning/estimateTask"):
        response = client.post(route, json=body)
        assert response.status_code == 422, response.text
        assert f"trainingArgs.{key}" in _fields(response)


@pytest.mark.parametrize(("path", "params", "field"), [
    ("/finetuning/getTask", {"id": str(2**63)}, "id"),
    ("/finetuning/getTask", {"id": str(2**31)}, "id"),
    ("/finetuning/getTask", {"id": "9" * 5000}, "id"),
    ("/finetuning/getTaskList", {"ownerId": str(2**64)}, "ownerId"),
    ("/finetuning/getTaskList", {"name": "a\x00b"}, "name"),
    ("/finetuning/getTaskLog", {"id": "1", "tail": "0"}, "tail"),
    ("/finetuning/getTaskLog", {"id": "1", "tail": "-5"}, "tail"),
    ("/finetuning/getTaskLog", {"id": "1", "offset": "-1"}, "offset"),
    ("/deployments/getDeploymentLog", {"id": "1", "tail": "0"}, "tail"),
    ("/datasets/getDataset", {"id": str(-(2**63) - 1)}, "id"),
])
def test_nasty_query_values_name_the_parameter(make_client, path, params, field):
    response = make_client(run_scheduler=False).get(path, params=params)
    assert response.status_code == 422, response.text
    assert field in _fields(response)


def test_a_stream_of_a_missing_task_is_a_404(make_client):
    response = make_client(run_scheduler=False).get("/finetuning/streamTask", params={"id": 424242})
    assert response.status_code == 404 and _error(response)["code"] == "not_found"


@pytest.mark.parametrize("uri", ["http://example.com/a.jsonl", "file:///etc/passwd",
                                 "zip::s3://bucket/a.zip", "s3://bucket/\x00"])
def test_odd_uri_schemes_are_refused_naming_uri(make_client, uri):
    response = make_client(run_scheduler=False).post("/datasets/createDataset", data={"name": "odd", "uri": uri})
    assert response.status_code == 422, response.text
    assert "uri" in _fields(response)


def test_like_wildcards_in_name_filters_match_only_themselves(make_client, tiny_model_dir, dataset_dir):
    client = make_client(run_scheduler=False)
    created = client.post("/finetuning/createTask", json=task_body("plain", tiny_model_dir, dataset_dir))
    assert created.status_code == 201, created.text
    experiment = {"name": "sweep", "baseModel": str(tiny_model_dir), "datasetPath": str(dataset_dir),
                  "template": "chatml"}
    assert client.post("/finetuning/createExperiment", json=experiment).status_code == 201
    for wildcard in ("%", "_", "p_ain"):
        assert client.get("/finetuning/getTaskList", params={"name": wildcard}).json()["total"] == 0
        assert client.get("/finetuning/getExperimentList", params={"name": wildcard}).json()["total"] == 0
    assert client.get("/finetuning/getTaskList", params={"name": "pla"}).json()["total"] == 1


def test_an_experiment_is_deleted_only_without_active_tasks(make_client, tiny_model_dir, dataset_dir):
    client = make_client(run_scheduler=False)
    experiment = client.post("/finetuning/createExperiment", json={"name": "sweep", "baseModel": str(tiny_model_dir),
                                                                   "datasetPath": str(dataset_dir),
                                                                   "template": "chatml"}).json()
    body = {"name": "member", "experimentId": experiment["id"], "trainingArgs": {"max_steps": 2, "cutoff_len": 64}}
    task = client.post("/finetuning/createTask", json=body)
    assert task.status_code == 201, task.text
    refused = client.delete("/finetuning/deleteExperiment", params={"id": experiment["id"]})
    assert refused.status_code == 409 and "member" in refused.json()["error"]["message"]
    assert client.post("/finetuning/stopTask", json={"id": task.json()["id"]}).status_code == 200
    deleted = client.delete("/finetuning/deleteExperiment", params={"id": experiment["id"]})
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"id": experiment["id"], "deleted": True, "tasksDetached": 1}
    assert client.get("/finetuning/getExperiment", params={"id": experiment["id"]}).status_code == 404
    assert client.get("/finetuning/getTask", params={"id": task.json()["id"]}).json()["experimentId"] is None
    assert client.delete("/finetuning/deleteExperiment", params={"id": experiment["id"]}).status_code == 404


def test_health_checks_the_database(make_client):
    client = make_client(run_scheduler=False)
    assert client.get("/health").json() == {"status": "ok"}
    platform: Platform = client.app.state.platform
    with platform.db.engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE alembic_version")  # what a wiped or foreign database looks like
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "database_unavailable" and "alembic_version" in response.text


def test_openapi_declares_the_error_body_for_every_error_status(make_client):
    document = make_client(run_scheduler=False).get("/openapi.json").json()
    assert "ErrorBody" in document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            # /v1 answers in OpenAI's error shape (its clients read it), everything else in the native one
            body = "OpenAIErrorBody" if path.startswith("/v1/") else "ErrorBody"
            for status in ("400", "401", "404", "409", "413", "422"):
                schema = responses[status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": f"#/components/schemas/{body}"}, (method, path, status)
            success = next(s for s in responses if s.startswith("2"))
            assert responses[success].get("content"), (method, path)


def test_error_bodies_are_json_objects_naming_the_limit(small_client):
    response = small_client.post("/finetuning/createTask", content=b"[" * 70_000,
                                 headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert json.loads(response.content)["error"]["details"][0]["message"]
