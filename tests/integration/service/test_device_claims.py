"""Evaluations and deployments hold GPUs in the same ledger as tasks, on a (fake) two-GPU host: each process sees
only the GPU it holds, /system/gpus names every holder, a request that finds no free GPU is a 409 naming the
holders (never a GPU someone holds), and a task waits until a GPU is given back."""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.polling import until
from tests.fixtures.standins import has_progress, records
from tests.integration.service.conftest import task_body
from tuneforge.planning.devices import Device

GPUS = [Device(index=i, kind="cuda", name=f"Fake H100 {i}", total_memory=80 * 2**30, free_memory=79 * 2**30,
               compute_capability=(9, 0)) for i in range(2)]


def _holders(client) -> list[dict | None]:
    return [device["holder"] for device in client.get("/system/gpus").json()["devices"]]


def _started(path: Path, module: str) -> list[str | None]:
    """The CUDA_VISIBLE_DEVICES each stand-in of that module started with."""
    return [r["cuda"] for r in records(path) if r["module"] == module]


def test_jobs_hold_gpus_in_one_ledger_and_a_full_host_refuses_or_queues(standin_server, tmp_path, tiny_model_dir,
                                                                        dataset_dir):
    started = tmp_path / "standin-records.jsonl"
    with standin_server(devices=GPUS) as (client, _):
        model = client.post("/models/registerModel", json={"name": "tiny", "source": str(tiny_model_dir)}).json()
        evaluation = client.post("/evaluations/createEvaluation", json={
            "modelId": model["id"], "dataset": "identity", "compareWithBase": False}).json()
        assert evaluation["devices"] == [0]
        deployment = client.post("/deployments/createDeployment", json={"name": "chat", "modelId": model["id"]})
        assert deployment.status_code == 201, deployment.text
        assert deployment.json()["devices"] == [1]
        until(lambda: _started(started, "tuneforge.serving") and _started(started, "tuneforge.engine.evaluate"),
              "the serving and evaluation processes started")
        assert _started(started, "tuneforge.engine.evaluate") == ["0"] and _started(started, "tuneforge.serving") == [
            "1"]  # each process sees only the GPU it holds
        assert _holders(client) == [{"kind": "evaluation", "id": evaluation["id"], "name": "tiny"},
                                    {"kind": "deployment", "id": deployment.json()["id"], "name": "chat"}]

        refused = client.post("/evaluations/createEvaluation", json={"modelId": model["id"], "dataset": "identity"})
        assert refused.status_code == 409, refused.text
        assert (f"GPU 0 is held by evaluation {evaluation['id']} of model 'tiny'; GPU 1 is held by deployment 'chat'"
                in refused.json()["error"]["message"])
        assert client.get("/evaluations/getEvaluationList").json()["total"] == 1  # nothing was started

        task = client.post("/finetuning/createTask", json=task_body("waits", tiny_model_dir, dataset_dir)).json()
        client.post("/deployments/stopDeployment", json={"id": deployment.json()["id"]})
        running = until(lambda: (t := client.get("/finetuning/getTask", params={"id": task["id"]}).json())[
            "status"] == "running" and t, "the task started on the GPU the deployment gave back")
        assert running["devices"] == [1]
        until(lambda: _started(started, "tuneforge.engine.run"), "the worker started")
        assert _started(started, "tuneforge.engine.run") == ["1"]

        again = client.post("/deployments/startDeployment", json={"id": deployment.json()["id"]})
        assert again.status_code == 409 and "GPU 1 is held by task 'waits'" in again.json()["error"]["message"]

        folder = Path(evaluation["jobDir"])
        until(lambda: has_progress(folder), "the evaluation wrote its first event")
        (folder / "finish").touch()
        until(lambda: _holders(client)[0] is None, "the finished evaluation gave its GPU back")
        restarted = client.post("/deployments/startDeployment", json={"id": deployment.json()["id"]})
        assert restarted.status_code == 200 and restarted.json()["devices"] == [0], restarted.text
        assert _holders(client) == [{"kind": "deployment", "id": deployment.json()["id"], "name": "chat"},
                                    {"kind": "task", "id": task["id"], "name": "waits"}]


def test_a_vllm_deployment_larger_than_the_host_is_refused_naming_the_field(standin_server, tiny_model_dir,
                                                                            monkeypatch):
    from tuneforge.service.models import deployments

    monkeypatch.setattr(deployments, "engine_problem", lambda engine, served: None)  # as if vLLM were installed
    with standin_server(devices=GPUS) as (client, _):
        model = client.post("/models/registerModel", json={"name": "tiny", "source": str(tiny_model_dir)}).json()
        for size, field in ((4, "options.tensor_parallel_size"), ("many", "options.tensor_parallel_size")):
            refused = client.post("/deployments/createDeployment", json={
                "name": "big", "modelId": model["id"], "engine": "vllm", "options": {"tensor_parallel_size": size}})
            assert refused.status_code == 422, refused.text
            assert refused.json()["error"]["details"][0]["field"] == field
        assert client.get("/deployments/getDeploymentList").json()["total"] == 0


def test_a_model_served_on_demand_takes_no_gpu_someone_holds(standin_server, tmp_path, tiny_model_dir, monkeypatch):
    with standin_server(devices=GPUS[:1]) as (client, platform):
        launched: list[int] = []
        original = platform.deployments._launch
        monkeypatch.setattr(platform.deployments, "_launch",
                            lambda deployment, model: (launched.append(deployment.id), original(deployment, model)))
        model = client.post("/models/registerModel", json={"name": "tiny", "source": str(tiny_model_dir)}).json()
        evaluation = client.post("/evaluations/createEvaluation", json={
            "modelId": model["id"], "dataset": "identity", "compareWithBase": False}).json()
        answer = client.post("/v1/chat/completions", json={"model": "tiny",
                                                           "messages": [{"role": "user", "content": "hi"}]})
        assert answer.status_code == 409, answer.text
        assert f"GPU 0 is held by evaluation {evaluation['id']} of model 'tiny'" in answer.json()["error"]["message"]
        assert client.get("/deployments/getDeploymentList").json()["total"] == 0  # nothing half-started is left
        assert launched == []  # no serving process was started for it
