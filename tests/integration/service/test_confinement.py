"""Every path a client sends outside a task goes through the one confinement: the folder named and every file read
below it stay inside the allowed folders (datasets, previews, model registration, evaluations), an export never
writes onto a root or the platform's own folders, and deleting a model removes only what the registry made."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from tests.integration.service.conftest import QA

SECRET = "TOP-SECRET-OUTSIDE"


@pytest.fixture()
def outside():
    """A folder outside every allowed one (pytest's base folder is allowed: the tiny model lives there), holding a
    file a link in an allowed folder would like to reach: valid alpaca rows, so only confinement can stop it."""
    folder = Path(tempfile.mkdtemp(prefix="tuneforge-outside-"))
    rows = [{"instruction": f"{SECRET} {q}", "input": "", "output": a} for q, a in QA]
    (folder / "secret.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    (folder / "weights").mkdir()
    (folder / "weights" / "model.safetensors").write_bytes(b"not yours")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _details(response) -> list[dict]:
    return response.json()["error"]["details"]


def _upload(client, name: str, folder: Path):
    content = (folder / "train.jsonl").read_bytes()
    return client.post("/datasets/createDataset", data={"name": name},
                       files=[("files", ("train.jsonl", content, "application/jsonl"))])


def _valid(client, dataset_id: int, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        report = client.get("/datasets/validateDataset", params={"id": dataset_id}).json()
        if report["status"] != "validating":
            assert report["status"] == "valid", report
            return report
        time.sleep(0.1)
    raise AssertionError("validation did not finish")


def test_a_dataset_folder_linking_a_file_out_is_refused_naming_the_file(make_client, dataset_dir, outside, settings):
    (dataset_dir / "leak.jsonl").symlink_to(outside / "secret.jsonl")
    client = make_client(run_scheduler=False)
    created = client.post("/datasets/createDataset", data={"name": "linked", "path": str(dataset_dir)})
    assert created.status_code == 422, created.text
    detail = _details(created)[0]
    assert detail["field"] == "path" and "leak.jsonl" in detail["message"], detail
    assert client.get("/datasets/getDatasetList").json()["total"] == 0

    uploaded = _upload(client, "uploaded", dataset_dir).json()
    version = client.post("/datasets/createDatasetVersion", data={"id": uploaded["id"], "path": str(dataset_dir)})
    assert version.status_code == 422 and "leak.jsonl" in _details(version)[0]["message"], version.text
    assert not list((settings.home / "datasets").glob(".staging-*"))  # nothing half-copied is left
    assert SECRET not in "".join(p.read_text() for p in (settings.home / "datasets").rglob("*.jsonl"))


def test_a_preview_never_reads_a_link_placed_in_a_stored_version(make_client, dataset_dir, outside, tiny_model_dir,
                                                                 settings):
    client = make_client(run_scheduler=False)
    dataset = _upload(client, "stored", dataset_dir).json()
    _valid(client, dataset["id"])
    shutil.copy(tiny_model_dir / "tokenizer.json", outside / "weights")  # a tokenizer outside: not read either
    away = client.get("/datasets/previewDataset", params={"id": dataset["id"], "model": str(outside / "weights"),
                                                         "template": "chatml"})
    assert away.status_code == 422 and _details(away)[0]["field"] == "model", away.text
    stored = settings.home / "datasets" / "stored" / "v1" / "train.jsonl"
    stored.unlink()  # a version's files are read-only, its folder is not: someone on the server swaps one
    stored.symlink_to(outside / "secret.jsonl")
    preview = client.get("/datasets/previewDataset", params={"id": dataset["id"], "model": str(tiny_model_dir),
                                                            "template": "chatml"})
    assert preview.status_code == 409 and SECRET not in preview.text, preview.text
    stats = client.get("/datasets/getDatasetStats", params={"id": dataset["id"], "cutoffLen": 16})
    assert stats.status_code == 409 and SECRET not in stats.text, stats.text


@pytest.mark.parametrize("link", ["tokenizer.json", "sub/deep.json", "weights"])
def test_a_model_folder_with_a_link_out_is_not_registered(make_client, tiny_model_dir, outside, tmp_path, link):
    model = tmp_path / "linked-model"
    shutil.copytree(tiny_model_dir, model)
    target = outside / "weights" if link == "weights" else outside / "secret.jsonl"
    (model / link).parent.mkdir(exist_ok=True)
    (model / link).unlink(missing_ok=True)
    (model / link).symlink_to(target)
    client = make_client(run_scheduler=False)
    response = client.post("/models/registerModel", json={"name": "linked", "source": str(model)})
    assert response.status_code == 422, response.text
    detail = _details(response)[0]
    assert detail["field"] == "source" and Path(link).name in detail["message"], detail
    assert client.get("/models/getModelList").json()["total"] <= 1  # the bundled model, when installed


def test_a_relative_model_path_is_looked_up_in_the_allowed_folders_and_a_hub_id_is_not_contacted(
        make_client, tiny_model_dir, tmp_path, monkeypatch):
    import huggingface_hub

    def no_network(*args, **kwargs):
        raise AssertionError("registration contacted the hub")

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", no_network)
    shutil.copytree(tiny_model_dir, tmp_path / "models" / "rel-model")
    monkeypatch.chdir(tempfile.gettempdir())  # the server's working directory is no place to look in
    client = make_client(run_scheduler=False)
    relative = client.post("/models/registerModel", json={"name": "rel", "source": "models/rel-model"})
    assert relative.status_code == 201, relative.text
    assert relative.json()["baseModel"] == str((tmp_path / "models" / "rel-model").resolve())
    hub = client.post("/models/registerModel", json={"name": "hub", "source": "someone/some-model"})
    assert hub.status_code == 201 and hub.json()["baseModel"] == "someone/some-model", hub.text
    escape = client.post("/models/registerModel", json={"name": "esc", "source": "models/../../x"})
    assert escape.status_code == 422 and "'..'" in _details(escape)[0]["message"]


def test_an_evaluation_dataset_folder_linking_out_is_refused(make_client, tiny_model_dir, dataset_dir, outside):
    client = make_client(run_scheduler=False)
    base = client.post("/models/registerModel", json={"name": "tiny", "source": str(tiny_model_dir)}).json()
    (dataset_dir / "valid.jsonl").unlink()
    (dataset_dir / "valid.jsonl").symlink_to(outside / "secret.jsonl")
    linked = client.post("/evaluations/createEvaluation", json={"modelId": base["id"], "dataset": str(dataset_dir)})
    assert linked.status_code == 422 and "valid.jsonl" in _details(linked)[0]["message"], linked.text
    away = client.post("/evaluations/createEvaluation", json={"modelId": base["id"], "dataset": str(outside)})
    assert away.status_code == 422 and _details(away)[0]["field"] == "dataset", away.text
    assert client.get("/evaluations/getEvaluationList").json()["total"] == 0


@pytest.mark.parametrize("where", ["root", "home", "registry", "datasets", "runs", "exported"])
def test_an_export_never_writes_onto_a_root_or_the_platforms_own_folders(make_client, tiny_model_dir, settings,
                                                                         tmp_path, where):
    home = settings.home.resolve()
    target = {"root": tmp_path.resolve(), "home": home, "registry": home / "registry", "datasets": home / "datasets",
              "runs": home / "runs" / "task-1", "exported": home / "exported"}[where]
    client = make_client(run_scheduler=False)
    base = client.post("/models/registerModel", json={"name": "tiny", "source": str(tiny_model_dir)}).json()
    response = client.post("/models/exportModel", json={"id": base["id"], "outputDir": str(target)})
    assert response.status_code == 422, response.text
    assert _details(response)[0]["field"] == "outputDir"
    assert client.get("/models/getExportList").json()["total"] == 0


def test_deleting_a_model_keeps_the_folders_the_registry_did_not_make(make_client, tiny_model_dir, settings,
                                                                      tmp_path):
    from tuneforge.store import Database, RegisteredModel

    user_model = tmp_path / "my-model"
    shutil.copytree(tiny_model_dir, user_model)
    # A task output placed in HOME/registry before outputs were kept out of the platform's folders, published.
    legacy = settings.home / "registry" / "team" / "out"
    shutil.copytree(tiny_model_dir, legacy)
    client = make_client(run_scheduler=False)
    base = client.post("/models/registerModel", json={"name": "mine", "source": str(user_model)}).json()
    database = Database(settings.database)
    with database.session() as session:
        row = RegisteredModel(name="legacy", kind="finetuned", source=str(tiny_model_dir), model_path=str(legacy),
                              created_at=time.time())
        session.add(row)
        session.flush()
        legacy_id = row.id
    database.dispose()
    for model_id in (base["id"], legacy_id):
        assert client.delete("/models/deleteModel", params={"id": model_id}).json()["deleted"]
    assert (user_model / "config.json").is_file()
    assert (legacy / "config.json").is_file()
