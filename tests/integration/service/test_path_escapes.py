"""No path a client sends leads a task out of the allowed folders or onto the platform's own files: relative
paths are looked up in the allowed folders (never the run directory), '..' is refused in every path-valued
setting, a model folder's symlinks and gguf_file stay inside, and an output is never a root or an internal folder."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.integration.service.conftest import task_body

PATH_FIELDS = ["adapter_name_or_path", "deepspeed", "resume_from_checkpoint", "dataset_dir", "tokenized_path",
               "cache_dir", "logging_dir"]


def _refused(client, body, field):
    response = client.post("/finetuning/estimateTask", json=body)
    assert response.status_code == 422, response.text
    fields = {d["field"] for d in response.json()["error"]["details"]}
    assert field in fields, fields
    return response.json()["error"]["details"]


@pytest.fixture()
def outside():
    """A folder outside every allowed one (pytest's base folder is allowed: the tiny model lives there), holding
    what an attacker would like to reach."""
    folder = Path(tempfile.mkdtemp(prefix="tuneforge-outside-"))
    (folder / "adapter").mkdir()
    (folder / "adapter" / "adapter_config.json").write_text("{}", encoding="utf-8")
    (folder / "secret.gguf").write_bytes(b"GGUF")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("field", PATH_FIELDS)
def test_dot_dot_in_any_path_setting_is_refused(make_client, tiny_model_dir, dataset_dir, outside, field):
    client = make_client(run_scheduler=False)
    escape = "../../../../../../../../" + str(outside).lstrip("/") + "/adapter"
    details = _refused(client, task_body("escape", tiny_model_dir, dataset_dir, **{field: escape}),
                       f"trainingArgs.{field}")
    message = next(d["message"] for d in details if d["field"] == f"trainingArgs.{field}")
    assert "'..'" in message, message
    absolute = _refused(client, task_body("escape", tiny_model_dir, dataset_dir, **{field: str(outside / "x")}),
                        f"trainingArgs.{field}")
    assert any("outside the allowed folders" in d["message"] for d in absolute), absolute


def test_gguf_file_is_a_name_inside_the_model_folder(make_client, tiny_model_dir, dataset_dir, outside):
    client = make_client(run_scheduler=False)
    escape = "../../../../../../../.." + str(outside / "secret.gguf")
    details = _refused(client, task_body("gguf", tiny_model_dir, dataset_dir, gguf_file=escape), "baseModel")
    assert "must be the name of a file inside the model folder" in details[0]["message"]


def test_a_symlink_in_a_model_folder_may_not_lead_out(make_client, tiny_model_dir, dataset_dir, outside, tmp_path):
    model = tmp_path / "linked-model"
    shutil.copytree(tiny_model_dir, model)
    (model / "model.safetensors").unlink()
    (model / "model.safetensors").symlink_to(outside / "secret.gguf")
    client = make_client(run_scheduler=False)
    details = _refused(client, task_body("linked", model, dataset_dir), "baseModel")
    assert "outside the allowed folders" in details[0]["message"]


@pytest.mark.parametrize("where", ["home", "registry", "runs", "datasets", "root", "outputs"])
def test_an_output_is_never_a_root_or_the_platforms_own_folder(make_client, tiny_model_dir, dataset_dir, settings,
                                                              tmp_path, where):
    home = settings.home.resolve()
    target = {"home": home, "registry": home / "registry", "runs": home / "runs" / "task-1",
              "datasets": home / "datasets", "root": tmp_path.resolve(), "outputs": settings.outputs_path.resolve()}
    client = make_client(run_scheduler=False)
    body = {**task_body("out", tiny_model_dir, dataset_dir), "outputPath": str(target[where])}
    _refused(client, body, "outputPath")
