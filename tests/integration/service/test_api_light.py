"""The API process stays light (no torch), documents itself, streams live updates and groups experiments."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.integration.service.conftest import task_body, wait_for

NO_TORCH = """
import sys, json
from fastapi.testclient import TestClient
from tuneforge.api.app import create_app
from tuneforge.settings import Settings
settings = Settings(home=sys.argv[1], cpu_slots=1)
with TestClient(create_app(settings, run_scheduler=False)) as client:  # validate and store, launch nothing
    client.headers["Authorization"] = "Bearer " + settings.local_key_file.read_text().strip()
    client.get("/finetuning/getTaskList"); client.get("/system/gpus")
    client.post("/finetuning/createTask", json={"name": "x", "baseModel": "bundled", "datasetPath": "identity"})
print(json.dumps(sorted(m for m in ("torch", "transformers", "peft", "accelerate") if m in sys.modules)))
"""


def test_the_api_process_never_imports_torch(tmp_path):
    result = subprocess.run([sys.executable, "-c", NO_TORCH, str(tmp_path)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_openapi_documents_seed_003_paths(make_client):
    paths = make_client(run_scheduler=False).get("/openapi.json").json()["paths"]
    for path in ("/finetuning/createTask", "/finetuning/deleteTask", "/finetuning/stopTask", "/finetuning/getTask",
                 "/finetuning/getTaskList", "/finetuning/getTaskLog", "/finetuning/copyTask",
                 "/finetuning/resumeTask", "/finetuning/getTaskMetrics", "/finetuning/getTaskCheckpoints",
                 "/finetuning/estimateTask", "/finetuning/createExperiment", "/finetuning/getExperiment",
                 "/finetuning/getExperimentList", "/system/gpus", "/finetuning/streamTask"):
        assert path in paths, path
    assert "delete" in paths["/finetuning/deleteTask"] and "post" in paths["/finetuning/createTask"]


def test_stream_sends_progress_and_log_lines_until_the_end(make_client, tiny_model_dir, dataset_dir):
    client = make_client()
    task_id = client.post("/finetuning/createTask", json=task_body("streamed", tiny_model_dir, dataset_dir,
                                                                   max_steps=4)).json()["id"]
    kinds, steps, lines = [], [], []
    with client.stream("GET", "/finetuning/streamTask", params={"id": task_id}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        event = None
        for raw in response.iter_lines():
            if raw.startswith("event:"):
                event = raw.split(":", 1)[1].strip()
                kinds.append(event)
            elif raw.startswith("data:"):
                data = json.loads(raw.split(":", 1)[1])
                if event == "task":
                    steps.append(data["step"])
                elif event == "log":
                    lines += data["lines"]
                elif event == "end":
                    assert data["status"] == "completed"
                    break
    assert kinds[-1] == "end" and "task" in kinds and "log" in kinds
    assert steps == sorted(steps) and steps[-1] == 4
    assert any("saved adapter" in line for line in lines)


def test_experiment_lists_its_tasks_side_by_side_with_the_best_marked(make_client, tiny_model_dir, dataset_dir):
    client = make_client()
    bad_name = client.post("/finetuning/createExperiment", json={"name": "Exp_1", "baseModel": str(tiny_model_dir),
                                                                 "datasetPath": str(dataset_dir)})
    assert bad_name.status_code == 422 and bad_name.json()["error"]["details"][0]["field"] == "name"
    experiment = client.post("/finetuning/createExperiment", json={
        "name": "lr-sweep", "baseModel": str(tiny_model_dir), "datasetPath": str(dataset_dir), "template": "chatml",
    }).json()
    ids = []
    for name, lr in (("lr-small", 1e-5), ("lr-large", 5e-3)):  # "添加任务": only the hyper-parameters are given
        body = {"name": name, "experimentId": experiment["id"],
                "trainingArgs": {"learning_rate": lr, "max_steps": 6, "per_device_train_batch_size": 4,
                                 "cutoff_len": 64, "logging_steps": 1, "report_to": "none"}}
        created = client.post("/finetuning/createTask", json=body)
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    other_model = client.post("/finetuning/createTask", json={"name": "other", "experimentId": experiment["id"],
                                                              "trainingArgs": {"template": "llama3"}})
    assert other_model.status_code == 422 and "trainingArgs.template" in other_model.text
    for task_id in ids:
        assert wait_for(client, task_id, {"completed", "failed"})["status"] == "completed"
    view = client.get("/finetuning/getExperiment", params={"id": experiment["id"]}).json()
    rows = {row["name"]: row for row in view["tasks"]}
    assert set(rows) == {"lr-small", "lr-large"}
    assert rows["lr-large"]["trainLoss"] < rows["lr-small"]["trainLoss"]
    assert view["bestTaskId"] == rows["lr-large"]["id"]
    assert rows["lr-small"]["hyperParameters"]["learning_rate"] == 1e-5
    listed = client.get("/finetuning/getExperimentList").json()
    assert listed["total"] == 1 and listed["items"][0]["name"] == "lr-sweep"
