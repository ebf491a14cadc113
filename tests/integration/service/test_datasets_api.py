"""Datasets as managed resources through the API: upload, validation by line, versions, pinning, deletion guard."""

from __future__ import annotations

import json
import time

import pytest

from tests.integration.service.conftest import QA, task_body, wait_for


def _jsonl(rows: list[dict]) -> bytes:
    return ("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n").encode()


GOOD = [{"instruction": q, "input": "", "output": a} for q, a in QA * 5]


def _upload(client, name: str, content: bytes, file_name: str = "train.jsonl", **form):
    return client.post("/datasets/createDataset", data={"name": name, **form},
                       files=[("files", (file_name, content, "application/jsonl"))])


def _ready(client, dataset_id: int, version: int | None = None, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        params = {"id": dataset_id} | ({"version": version} if version else {})
        report = client.get("/datasets/validateDataset", params=params).json()
        if report["status"] != "validating":
            return report
        time.sleep(0.1)
    raise AssertionError("validation did not finish")


def test_upload_validates_in_the_background_and_names_every_bad_line(make_client):
    client = make_client(run_scheduler=False)
    created = _upload(client, "qa-good", _jsonl(GOOD))
    assert created.status_code == 201, created.text
    dataset = created.json()
    assert dataset["versions"][0]["reference"] == "qa-good@v1"
    report = _ready(client, dataset["id"])
    assert report["status"] == "valid" and report["rows"]["train"] == len(GOOD) and report["problemCount"] == 0

    broken = _jsonl(GOOD[:3]) + b'{"instruction": "q", "output": ""}\n{"instruction": oops}\n' + _jsonl(GOOD[:2])
    bad = _upload(client, "qa-bad", broken).json()
    report = _ready(client, bad["id"])
    assert report["status"] == "invalid" and report["problemCount"] == 2
    lines = {(p["file"], p["line"]) for p in report["report"]["problems"]}
    assert lines == {("train.jsonl", 4), ("train.jsonl", 5)}, report["report"]["problems"]


@pytest.mark.parametrize(("form", "field"), [
    ({"name": "医疗数据"}, "name"), ({"name": "Has-Upper"}, "name"), ({"name": "x" * 64}, "name"),
    ({"name": "ok", "purpose": "chat"}, "purpose"), ({"name": "ok", "formatting": "csv"}, "formatting"),
    ({"name": "ok", "columns": "{not json"}, "columns"),
])
def test_bad_dataset_requests_name_the_field(make_client, form, field):
    client = make_client(run_scheduler=False)
    response = _upload(client, content=_jsonl(GOOD), **form)
    assert response.status_code == 422, response.text
    assert field in {d["field"] for d in response.json()["error"]["details"]}
    assert client.get("/datasets/getDatasetList").json()["total"] == 0


def test_versions_server_paths_and_object_store_uris(make_client, dataset_dir, tmp_path):
    import fsspec

    client = make_client(run_scheduler=False)
    from_path = client.post("/datasets/createDataset", data={"name": "from-path", "path": str(dataset_dir)})
    assert from_path.status_code == 201, from_path.text
    dataset = from_path.json()
    assert dataset["versions"][0]["files"] == {"train": ["train.jsonl"], "valid": ["valid.jsonl"]}
    same = client.post("/datasets/createDatasetVersion", data={"id": dataset["id"], "path": str(dataset_dir)}).json()
    assert same["unchanged"] and same["version"] == 1
    (dataset_dir / "train.jsonl").write_bytes(_jsonl(GOOD[:7]))
    second = client.post("/datasets/createDatasetVersion", data={"id": dataset["id"], "path": str(dataset_dir)})
    assert second.status_code == 201 and second.json()["version"] == 2 and not second.json()["unchanged"]
    outside = client.post("/datasets/createDataset", data={"name": "etc", "path": "/etc"})
    assert outside.status_code == 422 and outside.json()["error"]["details"][0]["field"] == "path"

    with fsspec.open("memory://bucket/qa/train.jsonl", "wb") as f:  # fsspec's in-memory store stands in for s3://
        f.write(_jsonl(GOOD))
    from_uri = client.post("/datasets/createDataset", data={"name": "from-uri", "uri": "memory://bucket/qa"})
    assert from_uri.status_code == 201, from_uri.text
    assert _ready(client, from_uri.json()["id"])["rows"]["train"] == len(GOOD)
    missing = client.post("/datasets/createDataset", data={"name": "nothing", "uri": "memory://bucket/none"})
    assert missing.status_code == 422 and missing.json()["error"]["details"][0]["field"] == "uri"


def test_a_task_pinned_to_v1_trains_on_v1_after_v2_is_uploaded(make_client, tiny_model_dir):
    client = make_client()
    dataset = _upload(client, "pinned", _jsonl(GOOD[:8])).json()
    assert _ready(client, dataset["id"])["status"] == "valid"
    body = task_body("on-v1", tiny_model_dir, "pinned", max_steps=4, save_steps=100)
    task = client.post("/finetuning/createTask", json=body)
    assert task.status_code == 201, task.text
    assert task.json()["datasetPath"] == "pinned@v1"
    v2 = client.post("/datasets/createDatasetVersion", data={"id": dataset["id"]},
                     files=[("files", ("train.jsonl", _jsonl(GOOD), "application/jsonl"))]).json()
    assert v2["version"] == 2
    deleting = client.delete("/datasets/deleteDataset", params={"id": dataset["id"]})
    assert deleting.status_code == 409 and "on-v1" in deleting.json()["error"]["message"]
    done = wait_for(client, task.json()["id"], {"completed", "failed"})
    assert done["status"] == "completed", done["errorMessage"]
    assert done["metrics"]["num_train_samples"] == 8  # v1's rows, not v2's 20
    assert client.delete("/datasets/deleteDataset", params={"id": dataset["id"]}).status_code == 200


def test_mixing_two_datasets_by_ratio_shows_the_effective_counts(make_client, tiny_model_dir):
    client = make_client(run_scheduler=False)
    for name, rows in (("domain", GOOD), ("general", GOOD[:6])):
        assert _ready(client, _upload(client, name, _jsonl(rows)).json()["id"])["status"] == "valid"
    body = task_body("mixed", tiny_model_dir, "unused") | {"datasetPath": None, "datasets": [
        {"name": "domain", "ratio": 0.5}, {"name": "general", "version": 1, "ratio": 0.5}]}
    created = client.post("/finetuning/createTask", json=body)
    assert created.status_code == 201, created.text
    task = created.json()
    assert task["datasetPath"] == "domain@v1,general@v1"
    assert task["trainingArgs"]["interleave_probs"] == [0.5, 0.5]
    assert task["trainingArgs"]["mix_strategy"] == "interleave_under"
    used = task["estimate"]["dataset"]["samples_per_dataset"]
    assert used["general@v1"]["rows"] == 6 and used["domain@v1"]["rows"] == len(GOOD)
    assert used["general@v1"]["used"] <= 6 and used["domain@v1"]["used"] < len(GOOD)  # stops at the smaller one
