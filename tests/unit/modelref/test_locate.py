"""A local model folder must hold weights: config.json alone is a description, not a model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneforge.modelref import ModelNotFound, locate_model


def model_folder(tmp_path: Path, *files: str) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}), encoding="utf-8")
    for name in files:
        (folder / name).write_bytes(b"")
    return folder


def test_a_folder_with_only_config_json_is_refused_naming_what_is_missing(tmp_path):
    folder = model_folder(tmp_path, "tokenizer.json")
    with pytest.raises(ModelNotFound) as refused:
        locate_model(str(folder))
    message = str(refused.value)
    assert f"model folder {folder.resolve()} has no weights" in message
    assert "*.safetensors" in message and "*.bin" in message and ".gguf" in message
    assert "config.json, tokenizer.json" in message  # what it does hold
    assert "model.safetensors" in refused.value.hint


def test_trainer_state_files_are_not_weights(tmp_path):
    folder = model_folder(tmp_path, "training_args.bin", "optimizer.bin")
    with pytest.raises(ModelNotFound, match="has no weights"):
        locate_model(str(folder))


@pytest.mark.parametrize("weights", ["model.safetensors", "adapter_model.safetensors", "pytorch_model.bin",
                                     "model.safetensors.index.json", "pytorch_model.bin.index.json"])
def test_any_kind_of_weights_makes_a_model(tmp_path, weights):
    folder = model_folder(tmp_path, weights)
    source = locate_model(str(folder))
    assert (source.path, source.gguf_file, source.is_local) == (str(folder.resolve()), None, True)


def test_a_gguf_file_in_the_folder_is_its_weights(tmp_path):
    folder = tmp_path / "gguf-only"
    folder.mkdir()
    (folder / "tiny.Q4_0.gguf").write_bytes(b"")
    assert locate_model(str(folder)).gguf_file == "tiny.Q4_0.gguf"


def test_a_named_gguf_file_must_be_there(tmp_path):
    folder = model_folder(tmp_path, "tiny.Q4_0.gguf")
    assert locate_model(str(folder), gguf_file="tiny.Q4_0.gguf").gguf_file == "tiny.Q4_0.gguf"
    with pytest.raises(ModelNotFound, match=r"no GGUF file 'tiny.Q8_0.gguf' \(.gguf files there: tiny.Q4_0.gguf\)"):
        locate_model(str(folder), gguf_file="tiny.Q8_0.gguf")


def test_a_relative_folder_is_found_next_to_the_config(tmp_path):
    model_folder(tmp_path, "model.safetensors")
    assert locate_model("model", config_dir=tmp_path).path == str((tmp_path / "model").resolve())
