"""Who may talk to the server: keys on every route, users who see only their own things, and the browser attacks
(a cross-site form, DNS rebinding) refused. Runs on the ASGI app with no scheduler: tasks stay pending."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.integration.service.conftest import task_body
from tuneforge.store import Deployment, Evaluation, RegisteredModel
from tuneforge.store.scope import Actor, acting_as


def _user_with_key(admin: TestClient, name: str, role: str = "member") -> str:
    user = admin.post("/users/createUser", json={"name": name, "role": role})
    assert user.status_code == 201, user.text
    key = admin.post("/users/createKey", json={"name": "test", "userId": user.json()["id"]})
    assert key.status_code == 201, key.text
    return key.json()["key"]


def _as(client: TestClient, key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture()
def admin(make_client: Any) -> TestClient:
    return make_client(run_scheduler=False)


def test_every_route_needs_a_key(admin: TestClient) -> None:
    anonymous = {"Authorization": ""}
    for method, path in (("GET", "/finetuning/getTaskList"), ("POST", "/finetuning/stopTask?id=1"),
                         ("GET", "/datasets/getDatasetList"), ("GET", "/system/gpus"), ("GET", "/users/getMe")):
        answer = admin.request(method, path, headers=anonymous)
        assert answer.status_code == 401, (path, answer.text)
        assert answer.json()["error"]["code"] == "unauthorized"
        assert answer.headers["www-authenticate"] == "Bearer"
    v1 = admin.get("/v1/models", headers=anonymous)
    assert v1.status_code == 401
    assert v1.json()["error"]["code"] == "invalid_api_key" and "message" in v1.json()["error"]  # OpenAI's shape
    wrong = admin.get("/finetuning/getTaskList", headers={"Authorization": "Bearer tf-not-a-key"})
    assert wrong.status_code == 401 and "not valid" in wrong.json()["error"]["message"]
    assert admin.get("/health", headers=anonymous).status_code == 200  # the probe stays open
    assert admin.get("/users/getMe").json()["name"] == "admin"


def test_a_revoked_key_is_refused_on_the_next_request(admin: TestClient) -> None:
    key = _user_with_key(admin, "carol")
    assert admin.get("/users/getMe", headers=_as(admin, key)).json()["name"] == "carol"
    keys = admin.get("/users/getKeyList", headers=_as(admin, key)).json()["items"]
    assert len(keys) == 1 and "key" not in keys[0]  # the secret is never listed
    revoked = admin.post("/users/revokeKey", json={"id": keys[0]["id"]}, headers=_as(admin, key))
    assert revoked.status_code == 200 and revoked.json()["revokedAt"]
    # keys are looked up on every request, never cached: the very next request is refused
    assert admin.get("/users/getMe", headers=_as(admin, key)).status_code == 401


def test_a_cross_site_form_post_cannot_stop_a_task(admin: TestClient, tiny_model_dir: Path,
                                                    dataset_dir: Path) -> None:
    task = admin.post("/finetuning/createTask", json=task_body("victim", tiny_model_dir, dataset_dir)).json()
    # what a page on evil.example makes the browser send: a form POST with the signed-in cookie, no body
    forged = admin.post(f"/finetuning/stopTask?id={task['id']}", headers={
        "Origin": "http://evil.example", "Content-Type": "application/x-www-form-urlencoded"})
    assert forged.status_code == 403
    assert forged.json()["error"]["code"] == "cross_site_request"
    no_origin = admin.post(f"/finetuning/deleteTask?id={task['id']}", headers={"Sec-Fetch-Site": "cross-site"})
    assert no_origin.status_code == 403
    assert admin.get("/finetuning/getTask", params={"id": task["id"]}).json()["status"] == "pending"
    same_origin = admin.post("/finetuning/stopTask", json={"id": task["id"]},
                             headers={"Origin": "http://testserver"})
    assert same_origin.status_code == 200


def test_a_foreign_host_header_is_refused(admin: TestClient) -> None:
    """DNS rebinding: a page on rebind.example whose name now points at 127.0.0.1 sends its own name as Host."""
    answer = admin.get("/finetuning/getTaskList", headers={"Host": "rebind.example"})
    assert answer.status_code == 400
    assert admin.get("/finetuning/getTaskList", headers={"Host": "127.0.0.1:8321"}).status_code == 200


def test_members_cannot_manage_users(admin: TestClient) -> None:
    key = _user_with_key(admin, "dave")
    refused = admin.post("/users/createUser", json={"name": "eve"}, headers=_as(admin, key))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert [u["name"] for u in admin.get("/users/getUserList", headers=_as(admin, key)).json()["items"]] == ["dave"]


def _alices_things(admin: TestClient, key: str, tiny_model_dir: Path, dataset_dir: Path) -> dict[str, Any]:
    """A task, dataset, experiment, grader, model, deployment and evaluation, all Alice's."""
    headers = _as(admin, key)
    task = admin.post("/finetuning/createTask", json=task_body("alice-task", tiny_model_dir, dataset_dir),
                      headers=headers).json()
    with open(dataset_dir / "train.jsonl", "rb") as data:
        dataset = admin.post("/datasets/createDataset", data={"name": "alice-data"}, headers=headers,
                             files={"files": ("train.jsonl", data, "application/octet-stream")}).json()
    experiment = admin.post("/finetuning/createExperiment", headers=headers, json={
        "name": "alice-exp", "baseModel": str(tiny_model_dir), "datasetPath": str(dataset_dir)}).json()
    grader = admin.post("/graders/createGrader", headers=headers, json={"name": "alice-grader", "grader": {
        "type": "string_check", "name": "g", "input": "{{sample.output_text}}", "reference": "x",
        "operation": "eq"}}).json()
    model = admin.post("/models/registerModel", headers=headers,
                       json={"name": "alice-model", "source": str(tiny_model_dir)}).json()
    platform = admin.app.state.platform  # type: ignore[attr-defined]
    alice = Actor(model["ownerId"], "alice", is_admin=False)
    with acting_as(alice), platform.db.session() as session:  # rows as a started deployment / evaluation leave
        deployment = Deployment(name="alice-serving", model_id=model["id"], status="stopped", options={})
        evaluation = Evaluation(model_id=model["id"], dataset="d", status="completed", options={}, scores=[])
        session.add_all([deployment, evaluation])
        session.flush()
        ids = {"deployment": deployment.id, "evaluation": evaluation.id}
    assert all("id" in x for x in (task, dataset, experiment, grader, model)), experiment
    rows = "".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                            {"role": "assistant", "content": f"a{i}"}]}) + "\n" for i in range(10))
    file = admin.post("/v1/files", headers=headers, data={"purpose": "fine-tune"},
                      files={"file": ("chat.jsonl", rows.encode(), "application/jsonl")}).json()
    job = admin.post("/v1/fine_tuning/jobs", headers=headers, json={
        "model": str(tiny_model_dir), "training_file": file["id"]}).json()
    assert file.get("status") == "processed" and "id" in job, (file, job)
    return {"task": task["id"], "dataset": dataset["id"], "experiment": experiment["id"], "grader": grader["id"],
            "model": model["id"], "file": file["id"], "job": job["id"], **ids}


def test_another_users_things_answer_404(admin: TestClient, tiny_model_dir: Path, dataset_dir: Path) -> None:
    alice_key, bob_key = _user_with_key(admin, "alice"), _user_with_key(admin, "bob")
    ids = _alices_things(admin, alice_key, tiny_model_dir, dataset_dir)
    bob = _as(admin, bob_key)
    t, d, m = ids["task"], ids["dataset"], ids["model"]
    attempts = [
        ("GET", f"/finetuning/getTask?id={t}", None), ("GET", f"/finetuning/getTaskLog?id={t}", None),
        ("GET", f"/finetuning/getTaskMetrics?id={t}", None), ("GET", f"/finetuning/getTaskSamples?id={t}", None),
        ("GET", f"/finetuning/getTaskCheckpoints?id={t}", None), ("GET", f"/finetuning/streamTask?id={t}", None),
        ("POST", "/finetuning/stopTask", {"id": t}), ("POST", "/finetuning/resumeTask", {"id": t}),
        ("POST", "/finetuning/copyTask", {"id": t}), ("DELETE", f"/finetuning/deleteTask?id={t}", None),
        ("GET", f"/datasets/getDataset?id={d}", None), ("GET", f"/datasets/validateDataset?id={d}", None),
        ("GET", f"/datasets/getDatasetStats?id={d}", None), ("GET", f"/datasets/previewDataset?id={d}", None),
        ("DELETE", f"/datasets/deleteDataset?id={d}", None),
        ("GET", f"/finetuning/getExperiment?id={ids['experiment']}", None),
        ("DELETE", f"/finetuning/deleteExperiment?id={ids['experiment']}", None),
        ("GET", f"/graders/getGrader?id={ids['grader']}", None),
        ("POST", "/graders/updateGrader", {"id": ids["grader"], "description": "bob's now"}),
        ("POST", "/graders/runGrader", {"graderId": ids["grader"], "samples": [{"sample": {"output_text": "x"}}]}),
        ("DELETE", f"/graders/deleteGrader?id={ids['grader']}", None),
        ("GET", f"/models/getModel?id={m}", None), ("DELETE", f"/models/deleteModel?id={m}", None),
        ("POST", "/models/publishModel", {"taskId": t, "name": "stolen"}),
        ("POST", "/models/exportModel", {"id": m}),
        ("POST", "/deployments/createDeployment", {"name": "bobs-serving", "modelId": m}),
        ("GET", f"/deployments/getDeployment?id={ids['deployment']}", None),
        ("GET", f"/deployments/getDeploymentLog?id={ids['deployment']}", None),
        ("POST", "/deployments/startDeployment", {"id": ids["deployment"]}),
        ("POST", "/deployments/stopDeployment", {"id": ids["deployment"]}),
        ("DELETE", f"/deployments/deleteDeployment?id={ids['deployment']}", None),
        ("GET", f"/evaluations/getEvaluation?id={ids['evaluation']}", None),
        ("POST", "/evaluations/stopEvaluation", {"id": ids["evaluation"]}),
        ("DELETE", f"/evaluations/deleteEvaluation?id={ids['evaluation']}", None),
        ("POST", "/evaluations/createEvaluation", {"modelId": m, "dataset": "alice-data"}),
        ("POST", "/v1/chat/completions", {"model": "alice-model", "messages": [{"role": "user", "content": "hi"}]}),
        ("GET", "/v1/models/alice-model", None),
        ("GET", f"/v1/files/{ids['file']}", None), ("GET", f"/v1/files/{ids['file']}/content", None),
        ("DELETE", f"/v1/files/{ids['file']}", None),
        ("GET", f"/v1/fine_tuning/jobs/{ids['job']}", None),
        ("GET", f"/v1/fine_tuning/jobs/{ids['job']}/events", None),
        ("GET", f"/v1/fine_tuning/jobs/{ids['job']}/checkpoints", None),
        ("POST", f"/v1/fine_tuning/jobs/{ids['job']}/pause", None),
        ("POST", f"/v1/fine_tuning/jobs/{ids['job']}/resume", None),
        ("POST", f"/v1/fine_tuning/jobs/{ids['job']}/cancel", None),
    ]
    for method, path, body in attempts:
        answer = admin.request(method, path, headers=bob, json=body)
        assert answer.status_code == 404, f"{method} {path}: {answer.status_code} {answer.text[:300]}"
    # OpenAI answers a job on a file it cannot find with 400 naming training_file: Alice's file is such a file
    stolen = admin.post("/v1/fine_tuning/jobs", headers=bob, json={"model": "bundled", "training_file": ids["file"]})
    assert stolen.status_code == 400 and stolen.json()["error"]["param"] == "training_file"
    assert "no such file" in stolen.json()["error"]["message"]
    for path, key in (("/finetuning/getTaskList", "items"), ("/datasets/getDatasetList", "items"),
                      ("/graders/getGraderList", "items"), ("/deployments/getDeploymentList", "items"),
                      ("/evaluations/getEvaluationList", "items"), ("/v1/files", "data"),
                      ("/v1/fine_tuning/jobs", "data")):
        assert admin.get(path, headers=bob).json()[key] == [], path
    assert {x["name"] for x in admin.get("/models/getModelList", headers=bob).json()["items"]} <= {"bundled"}
    assert "alice-model" not in {m["id"] for m in admin.get("/v1/models", headers=bob).json()["data"]}
    # nothing of Alice's changed, and she and the admin still see all of it
    alice = _as(admin, alice_key)
    assert admin.get(f"/finetuning/getTask?id={t}", headers=alice).json()["status"] == "pending"
    assert admin.get(f"/graders/getGrader?id={ids['grader']}", headers=alice).json()["description"] in ("", None)
    assert admin.get(f"/models/getModel?id={m}").status_code == 200
    assert admin.get(f"/v1/files/{ids['file']}/content", headers=alice).status_code == 200
    assert admin.get(f"/v1/fine_tuning/jobs/{ids['job']}", headers=alice).json()["status"] == "queued"


def test_the_bundled_model_is_shared_and_only_admins_change_it(admin: TestClient) -> None:
    platform = admin.app.state.platform  # type: ignore[attr-defined]
    with platform.db.session() as session:
        session.add(RegisteredModel(name="shared-base", kind="base", source="bundled"))  # the platform's
    key = _user_with_key(admin, "frank")
    names = {m["name"]: m["id"] for m in admin.get("/models/getModelList", headers=_as(admin, key)).json()["items"]}
    assert "shared-base" in names
    refused = admin.delete(f"/models/deleteModel?id={names['shared-base']}", headers=_as(admin, key))
    assert refused.status_code == 403 and "admin" in refused.json()["error"]["message"]
