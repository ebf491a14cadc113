"""The registry: publish a task's final model or a checkpoint, with lineage; base models; bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.service.conftest import task_body, wait_for


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_publish_final_and_checkpoint_with_lineage(make_client, tiny_model_dir, dataset_dir):
    client = make_client()
    task = client.post("/finetuning/createTask", json=task_body("to-publish", tiny_model_dir, dataset_dir,
                                                                max_steps=6, save_steps=3)).json()
    done = wait_for(client, task["id"], {"completed", "failed"})
    assert done["status"] == "completed", done["errorMessage"]

    final = client.post("/models/publishModel", json={"taskId": task["id"], "name": "qa-final"})
    assert final.status_code == 201, final.text
    model = client.get("/models/getModel", params={"id": final.json()["id"]}).json()
    assert model["kind"] == "finetuned" and model["adapterPath"] == done["outputPath"]
    lineage = model["lineage"]
    assert lineage["baseModel"] == str(tiny_model_dir) and lineage["task"]["name"] == "to-publish"
    assert lineage["checkpointStep"] == 6 and lineage["trainingConfig"]["lora_rank"] == 8
    assert lineage["datasets"] == [str(dataset_dir)] and lineage["metrics"]["train_loss"] > 0

    early = client.post("/models/publishModel", json={"taskId": task["id"], "name": "qa-step3", "checkpointStep": 3})
    assert early.status_code == 201, early.text
    early_model = client.get("/models/getModel", params={"id": early.json()["id"]}).json()
    copied = Path(early_model["adapterPath"])
    assert (copied / "adapter_config.json").is_file() and not (copied / "optimizer.pt").exists()
    assert early_model["checkpointStep"] == 3 and early_model["lineage"]["metrics"]["step"] == 3

    # the registry keeps both after the task is deleted: the checkpoint was copied, the output folder stays
    client.delete("/finetuning/deleteTask", params={"id": task["id"]})
    assert copied.is_dir() and Path(done["outputPath"], "adapter_config.json").is_file()
    names = {m["name"] for m in client.get("/models/getModelList", params={"kind": "finetuned"}).json()["items"]}
    assert names == {"qa-final", "qa-step3"}


def test_publish_and_register_refuse_bad_input(make_client, tiny_model_dir, dataset_dir):
    client = make_client(run_scheduler=False)
    pending = client.post("/finetuning/createTask", json=task_body("not-done", tiny_model_dir, dataset_dir)).json()
    cases = [
        ({"taskId": 999, "name": "x"}, 404, "taskId"),
        ({"taskId": pending["id"], "name": "x"}, 409, "checkpointStep"),
        ({"taskId": pending["id"], "name": "x", "checkpointStep": 5}, 422, "checkpointStep"),
        ({"taskId": pending["id"], "name": "Bad Name"}, 422, "name"),
    ]
    for body, status, field in cases:
        response = client.post("/models/publishModel", json=body)
        assert response.status_code == status, (body, response.text)
        assert field in {d["field"] for d in response.json()["error"]["details"]}, response.text
    registered = client.post("/models/registerModel", json={"name": "tiny-base", "source": str(tiny_model_dir)})
    assert registered.status_code == 201 and registered.json()["kind"] == "base"
    again = client.post("/models/registerModel", json={"name": "tiny-base", "source": str(tiny_model_dir)})
    assert again.status_code == 409
    missing = client.post("/models/registerModel", json={"name": "nope", "source": "/tmp/no/such/model"})
    assert missing.status_code == 422 and missing.json()["error"]["details"][0]["field"] == "source"
    assert client.get("/models/getModel", params={"id": 999}).status_code == 404


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_k_quant_export_is_refused_without_llama_cpp(make_client, tiny_model_dir, monkeypatch):
    """Before any job starts: the answer names the field and the extra that brings llama.cpp's quantizer."""
    from tuneforge.schemas import export_spec

    monkeypatch.setattr(export_spec, "llama_cpp_installed", lambda: False)
    client = make_client(run_scheduler=False)
    model = client.post("/models/registerModel", json={"name": "tiny-base", "source": str(tiny_model_dir)}).json()
    refused = client.post("/models/exportModel", json={"id": model["id"], "gguf": "q4_K_M"})
    assert refused.status_code == 422, refused.text
    (detail,) = refused.json()["error"]["details"]
    assert detail["field"] == "gguf" and "pip install 'tuneforge[gguf]'" in detail["message"]
    assert client.get("/models/getExportList").json()["total"] == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_gptq_export_settings_are_checked_before_any_job_starts(make_client, tiny_model_dir, dataset_dir,
                                                                monkeypatch):
    """Every wrong GPTQ setting is a 422 naming its field, and no export job is created."""
    from tuneforge.schemas import export_spec

    client = make_client(run_scheduler=False)
    model = client.post("/models/registerModel", json={"name": "tiny-base", "source": str(tiny_model_dir)}).json()
    cases = [
        ({"quantizationBit": 4}, "quantizationDataset", "required with quantization_bit"),
        ({"quantizationDataset": "identity"}, "quantizationDataset", "set quantizationBit"),
        ({"quantizationGroupSize": 64}, "quantizationGroupSize", "set quantizationBit"),
        ({"quantizationBit": 3, "quantizationDataset": "identity"}, "quantizationBit", "4 or 8"),
        ({"quantizationBit": 4, "quantizationDataset": "no-such-dataset"}, "quantizationDataset", "no-such-dataset"),
        ({"quantizationBit": 4, "quantizationDataset": "/etc/passwd"}, "quantizationDataset", ""),
        ({"quantizationBit": 4, "quantizationDataset": "identity", "gguf": "f16"}, "gguf", "llama.cpp"),
        ({"quantizationBit": 4, "quantizationDataset": "identity", "quantizationGroupSize": 100},
         "quantizationGroupSize", ""),
        ({"quantizationBit": 8, "quantizationDataset": str(dataset_dir), "quantizationNsamples": 0},
         "quantizationNsamples", ""),
        ({"quantizationBit": 8, "quantizationDataset": "identity", "safeSerialization": False},
         "safeSerialization", "safetensors"),
        ({"quantizationBit": 8, "quantizationDataset": "identity", "quantizationNsamples": 4096},
         "quantizationNsamples", "calibration tokens"),
        ({"quantizationBit": 4, "quantizationDataset": "identity"}, "quantizationGroupSize",
         "does not divide this model's layer widths (64, 128); choose 64 or 32"),
        ({"quantizationBit": 4, "quantizationDataset": "identity,instructions", "quantizationGroupSize": 32},
         "quantizationDataset", "is a bundled dataset, which is used on its own"),
        ({"quantizationGroupSize": 128}, "quantizationGroupSize", "set quantizationBit"),
    ]
    for body, field, words in cases:  # each field named as the request body names it
        refused = client.post("/models/exportModel", json={"id": model["id"], **body})
        assert refused.status_code == 422, (body, refused.text)
        details = refused.json()["error"]["details"]
        assert any(d["field"] == field and words in d["message"] for d in details), (body, details)
    monkeypatch.setattr(export_spec, "installed", lambda module: module != "compressed_tensors")
    refused = client.post("/models/exportModel", json={"id": model["id"], "quantizationBit": 4,
                                                       "quantizationDataset": "identity", "quantizationGroupSize": 32})
    (detail,) = refused.json()["error"]["details"]
    assert detail["field"] == "quantizationBit" and "pip install 'tuneforge[gptq]'" in detail["message"]
    assert client.get("/models/getExportList").json()["total"] == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_gptq_export_calibrates_on_a_registered_dataset(make_client, tiny_model_dir, dataset_dir):
    """The calibration dataset is named as a task names one (here a folder in the allowed folders: its train split);
    the job's view carries the GPTQ settings, and the export registers as a model that answers a chat."""
    import json
    import time

    client = make_client(run_scheduler=False)
    model = client.post("/models/registerModel", json={"name": "tiny-base", "source": str(tiny_model_dir)}).json()
    job = client.post("/models/exportModel", json={
        "id": model["id"], "quantizationBit": 4, "quantizationDataset": str(dataset_dir), "quantizationNsamples": 8,
        "quantizationMaxlen": 32, "quantizationGroupSize": 32})
    assert job.status_code == 201, job.text
    assert job.json()["quantization"] == {"method": "gptq", "bits": 4, "groupSize": 32, "dataset": str(dataset_dir),
                                          "nsamples": 8, "maxlen": 32}
    deadline = time.monotonic() + 300  # a generous bound for a loaded machine; the job takes a few seconds here
    while (state := client.get("/models/getExport", params={"id": job.json()["id"]}).json())["status"] == "running":
        assert time.monotonic() < deadline, state
        time.sleep(0.3)
    assert state["status"] == "completed", state
    config = json.loads((Path(state["outputDir"]) / "config.json").read_text())
    assert config["quantization_config"]["config_groups"]["group_0"]["weights"]["num_bits"] == 4
    registered = client.post("/models/registerModel", json={"name": "tiny-int4", "source": state["outputDir"]})
    assert registered.status_code == 201, registered.text
    answer = client.post("/v1/chat/completions", json={"model": "tiny-int4", "max_tokens": 4,
                                                       "messages": [{"role": "user", "content": "Who are you?"}]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["usage"]["completion_tokens"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_export_a_published_model_in_the_background(make_client, tiny_model_dir, dataset_dir):
    import time

    client = make_client()
    task = client.post("/finetuning/createTask", json=task_body("to-export", tiny_model_dir, dataset_dir,
                                                                max_steps=2)).json()
    assert wait_for(client, task["id"], {"completed", "failed"})["status"] == "completed"
    model = client.post("/models/publishModel", json={"taskId": task["id"], "name": "to-export"}).json()
    bad = client.post("/models/exportModel", json={"id": model["id"], "gguf": "q4_k"})
    assert bad.status_code == 422 and "gguf" in bad.text
    job = client.post("/models/exportModel", json={"id": model["id"], "gguf": "f16", "maxShardSizeGb": 0.0002})
    assert job.status_code == 201, job.text
    deadline = time.monotonic() + 300
    while (state := client.get("/models/getExport", params={"id": job.json()["id"]}).json())["status"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert state["status"] == "completed", state
    assert any(name.endswith("-f16.gguf") for name in state["files"])
    shards = [size for name, size in state["sizes"].items() if name.endswith(".safetensors")]
    assert len(shards) > 1 and max(shards) <= 200_000


def test_a_base_model_imported_from_an_object_store_is_copied_in_with_progress(make_client, tiny_model_dir):
    """fsspec's in-memory filesystem stands in for s3:// (same code path: url_to_fs, find, open)."""
    import time

    import fsspec

    memory = fsspec.filesystem("memory")
    for path in tiny_model_dir.rglob("*"):
        if path.is_file():
            memory.pipe(f"/bucket/tiny/{path.relative_to(tiny_model_dir)}", path.read_bytes())
    memory.pipe("/bucket/empty/notes.txt", b"no model here")
    client = make_client(run_scheduler=False)

    created = client.post("/models/registerModel", json={"name": "tiny-remote", "source": "memory://bucket/tiny"})
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "importing" and created.json()["origin"] == "memory://bucket/tiny"
    deadline = time.monotonic() + 300
    while (model := client.get("/models/getModel", params={"id": created.json()["id"]}).json())["status"] == \
            "importing" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert model["status"] == "ready" and model["progress"] == 100.0, model
    local = Path(model["baseModel"])
    assert (local / "config.json").read_bytes() == (tiny_model_dir / "config.json").read_bytes()
    assert not local.with_name(local.name + ".partial").exists()

    empty = client.post("/models/registerModel", json={"name": "nothing", "source": "memory://bucket/empty"})
    assert empty.status_code == 422 and "no config.json" in empty.json()["error"]["message"]
    memory.pipe("/bucket/sly/config.json", b"{}")
    memory.pipe("/bucket/sly/sub/../../../escaped.json", b"{}")  # a key S3 allows, aimed outside the folder
    for name, uri in (("sly", "memory://bucket/sly"), ("local", "local:///etc"), ("web", "http://10.0.0.1/m"),
                      ("chained", "simplecache::memory://bucket/tiny")):
        refused = client.post("/models/registerModel", json={"name": name, "source": uri})
        assert refused.status_code == 422 and refused.json()["error"]["details"][0]["field"] == "source", uri
    assert client.get("/models/getModelList", params={"name": "nothing"}).json()["total"] == 0

    assert client.delete("/models/deleteModel", params={"id": model["id"]}).json()["deleted"]
    assert not local.exists()  # the registry's copy goes with the model
