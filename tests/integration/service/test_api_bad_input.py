"""Bad input → a 4xx whose error body names the field, and nothing is created (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from tests.integration.service.conftest import task_body


def _fields(response) -> set[str]:
    return {d["field"] for d in response.json()["error"]["details"]}


@pytest.mark.parametrize(("change", "field"), [
    ({"trainingArgs": {"lora_rankk": 8}}, "trainingArgs.lora_rankk"),
    ({"trainingArgs": {"lora_rank": 0}}, "trainingArgs.lora_rank"),
    ({"baseModel": "no/such-model-here-xyz"}, "baseModel"),
    ({"datasetPath": "/tmp/definitely/not/here.jsonl"}, "datasetPath"),
    ({"outputPath": "../../etc"}, "outputPath"),
    ({"outputPath": "/etc/tuneforge"}, "outputPath"),
    ({"trainingArgs": {"adapter_name_or_path": "/etc/adapter"}}, "trainingArgs.adapter_name_or_path"),
    ({"trainingArgs": {"deepspeed": "/root/ds_z3.json"}}, "trainingArgs.deepspeed"),
    ({"gpuConfig": {"cuda_visible_devices": "7"}}, "gpuConfig.cuda_visible_devices"),
    ({"gpuConfig": {"gpu_count": 9}}, "gpuConfig.gpu_count"),
    ({"name": "My Task"}, "name"),
    ({"name": "-starts-with-dash"}, "name"),
    ({"basemodel": "x"}, "basemodel"),
])
def test_bad_input_names_the_field_and_creates_nothing(make_client, tiny_model_dir, dataset_dir, change, field):
    client = make_client(run_scheduler=False)
    body = task_body("good-name", tiny_model_dir, dataset_dir)
    for key, value in change.items():
        body[key] = {**body[key], **value} if key == "trainingArgs" else value
    response = client.post("/finetuning/createTask", json=body)
    assert 400 <= response.status_code < 500, response.text
    error = response.json()["error"]
    assert field in _fields(response), error
    assert error["message"] and error["code"]
    assert client.get("/finetuning/getTaskList").json()["total"] == 0


def test_malformed_json_is_a_400(make_client):
    client = make_client(run_scheduler=False)
    response = client.post("/finetuning/createTask", content=b'{"name": "x", "baseModel": ',
                           headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_json"
    assert client.get("/finetuning/getTaskList").json()["total"] == 0


def test_a_bad_dataset_line_is_named(make_client, tiny_model_dir, dataset_dir):
    with (dataset_dir / "train.jsonl").open("a") as f:
        f.write('{"instruction": "q", "input": "", "output": ""}\n{"instruction": broken\n')
    client = make_client(run_scheduler=False)
    response = client.post("/finetuning/createTask", json=task_body("t", tiny_model_dir, dataset_dir))
    assert response.status_code == 422
    messages = " ".join(d["message"] for d in response.json()["error"]["details"])
    assert "train.jsonl:25" in messages and "train.jsonl:26" in messages, messages


def test_seed_003_request_is_accepted_as_written(make_client, tiny_model_dir, dataset_dir, tmp_path):
    """Seed 003's example body (camelCase outside, snake_case inside, max_seq_length alias, "0,1"), with its model
    and paths pointed at what exists here."""
    client = make_client(run_scheduler=False)
    body = {
        "name": "my_finetuning_task", "description": "ChatGLM3 医疗问答微调", "baseModel": str(tiny_model_dir),
        "datasetPath": str(dataset_dir), "outputPath": str(tmp_path / "output" / "medical_chatglm3"),
        "trainingArgs": {"num_train_epochs": 5, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 4,
                         "learning_rate": 2e-4, "max_seq_length": 512},
        "gpuConfig": {"cuda_visible_devices": "0,1"},
    }
    response = client.post("/finetuning/createTask", json=body)
    assert response.status_code == 201, response.text
    task = response.json()
    assert task["status"] == "pending" and task["name"] == "my_finetuning_task"
    assert task["description"] == "ChatGLM3 医疗问答微调" and task["gpuConfig"] == {"cuda_visible_devices": "0,1"}
    assert task["trainingArgs"]["max_seq_length"] == 512
    stored = client.get("/finetuning/getTask", params={"id": task["id"]}).json()
    assert stored["outputPath"].endswith("medical_chatglm3")
    again = client.post("/finetuning/createTask", json=body)
    assert again.status_code == 409 and "name" in _fields(again)


def test_unknown_task_is_a_404(make_client):
    client = make_client(run_scheduler=False)
    for method, path in [("get", "/finetuning/getTask?id=999"), ("post", "/finetuning/stopTask?id=999"),
                         ("delete", "/finetuning/deleteTask?id=999"), ("get", "/finetuning/getTaskLog?id=999")]:
        response = getattr(client, method)(path)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_list_filters_and_pages(make_client, tiny_model_dir, dataset_dir):
    client = make_client(run_scheduler=False)
    for i in range(5):
        body = task_body(f"run-{i}", tiny_model_dir, dataset_dir) | {"ownerId": i % 2}
        assert client.post("/finetuning/createTask", json=body).status_code == 201
    page = client.get("/finetuning/getTaskList", params={"pageSize": 2, "page": 1}).json()
    assert page["total"] == 5 and [t["name"] for t in page["items"]] == ["run-4", "run-3"]  # newest first
    assert client.get("/finetuning/getTaskList", params={"ownerId": 1}).json()["total"] == 2
    assert client.get("/finetuning/getTaskList", params={"name": "run-2"}).json()["items"][0]["name"] == "run-2"
    stopped = client.post("/finetuning/stopTask", json={"id": page["items"][0]["id"]}).json()
    assert stopped["status"] == "stopped"  # a pending task stops at once
    assert client.get("/finetuning/getTaskList", params={"status": "pending"}).json()["total"] == 4
    bad = client.get("/finetuning/getTaskList", params={"status": "runing"})
    assert bad.status_code == 422 and "status" in _fields(bad)


def test_two_active_tasks_cannot_write_to_one_output_folder(make_client, tiny_model_dir, dataset_dir, tmp_path):
    client = make_client(run_scheduler=False)
    body = task_body("one", tiny_model_dir, dataset_dir) | {"outputPath": str(tmp_path / "shared-out")}
    assert client.post("/finetuning/createTask", json=body).status_code == 201
    second = client.post("/finetuning/createTask", json=body | {"name": "two"})
    assert second.status_code == 409 and _fields(second) == {"outputPath"}


def test_relative_paths_are_stored_as_the_service_resolved_them(make_client, tiny_model_dir, dataset_dir,
                                                                 monkeypatch):
    """The worker runs in its run directory: a relative datasetPath must not change meaning there. It is looked up
    in the allowed folders, not in the server's working directory."""
    monkeypatch.chdir(dataset_dir)
    client = make_client(run_scheduler=False)
    relative = str(dataset_dir.relative_to(dataset_dir.parents[1]))  # "data/qa" under an allowed folder
    response = client.post("/finetuning/createTask", json=task_body("rel", tiny_model_dir, relative))
    assert response.status_code == 201, response.text
    assert response.json()["trainingArgs"]["dataset"] == str(dataset_dir)
    nowhere = client.post("/finetuning/createTask", json=task_body("rel-2", tiny_model_dir, "./valid.jsonl"))
    assert nowhere.status_code == 422 and "not found in the allowed folders" in nowhere.text
