"""`tuneforge train CONFIG [key=value …]` as a user runs it: bad input is refused with one clear message and leaves
nothing behind; a good config trains to completion; key=value overrides win over the file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

GOOD_LINES = [
    {"instruction": "Who are you?", "output": "I am Forge."},
    {"instruction": "What is the capital of France?", "output": "Paris."},
    {"instruction": "Translate to French: good morning.", "output": "Bonjour."},
]


@pytest.fixture()
def tiny_model(tiny_model_dir: Path) -> Path:
    return tiny_model_dir


@pytest.fixture()
def workdir(tmp_path: Path) -> Path:
    """The user's working directory: a config folder with a good dataset in it."""
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "good.jsonl").write_text("\n".join(json.dumps(x) for x in GOOD_LINES) + "\n")
    return tmp_path


def write_config(workdir: Path, model: Path | str, **keys: Any) -> Path:
    config = {"model_name_or_path": str(model), "stage": "sft", "finetuning_type": "lora", "template": "chatml",
              "dataset": "good.jsonl", "cutoff_len": 64, "per_device_train_batch_size": 2, "max_steps": 6,
              "logging_steps": 1, "output_dir": "saves/run", "report_to": "none"}
    config.update(keys)
    path = workdir / "configs" / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_cli(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TUNEFORGE_HOME": str(workdir.parent / f"{workdir.name}-home"), "COLUMNS": "80"}
    return subprocess.run([sys.executable, "-m", "tuneforge.cli.main", "train", *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=300)


def listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def refused(workdir: Path, config: Path, *overrides: str) -> str:
    """Runs the CLI expecting a refusal; returns what it printed. Nothing may be created anywhere."""
    before = listing(workdir)
    result = run_cli(workdir, str(config), *overrides)
    printed = result.stdout + result.stderr
    assert result.returncode != 0, printed
    assert "Traceback" not in printed, printed
    assert not (workdir / "saves").exists() and not (config.parent / "saves").exists()
    assert listing(workdir) == before, listing(workdir) - before
    return printed


def test_unknown_key_is_named_with_a_suggestion(workdir, tiny_model):
    printed = refused(workdir, write_config(workdir, tiny_model, lora_rnk=8))
    assert "lora_rnk" in printed and "lora_rank" in printed


def test_impossible_values_are_all_reported_in_one_message(workdir, tiny_model):
    config = write_config(workdir, tiny_model, lora_rank=0, per_device_train_batch_size=0, learning_rate=-1e-4,
                          val_size=1.0)
    printed = refused(workdir, config)
    for key in ("lora_rank", "per_device_train_batch_size", "learning_rate", "val_size"):
        assert key in printed, (key, printed)
    assert printed.count("error") == 1, printed


def test_missing_model_lists_where_it_looked(workdir):
    # "./" makes it a path: a bare "org/name" is taken for a hub id and fails only when the worker downloads
    printed = refused(workdir, write_config(workdir, "./models/absent"))
    assert "model_name_or_path" in printed
    assert str(workdir / "configs" / "models" / "absent") in printed and str(workdir / "models" / "absent") in printed


def test_missing_dataset_lists_where_it_looked(workdir, tiny_model):
    printed = refused(workdir, write_config(workdir, tiny_model, dataset="absent_set"))
    assert "absent_set" in printed
    assert str(workdir / "configs" / "absent_set") in printed and str(workdir / "absent_set") in printed
    assert "dataset_info.json" in printed


def test_malformed_jsonl_names_file_line_and_field(workdir, tiny_model):
    bad = workdir / "configs" / "bad.jsonl"
    bad.write_text(json.dumps(GOOD_LINES[0]) + "\n" + '{"instruction": "Hi", "output": "Hello"\n'
                   + json.dumps({"instruction": "Hi", "output": 3}) + "\n")
    printed = refused(workdir, write_config(workdir, tiny_model, dataset="bad.jsonl"))
    assert f"{bad}:2:" in printed and "invalid JSON" in printed
    assert f"{bad}:3: output:" in printed


def test_a_good_config_trains_to_completion_and_overrides_win(workdir, tiny_model):
    config = write_config(workdir, tiny_model)
    result = run_cli(workdir, str(config), "max_steps=2", "lr=1e-3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "completed" in result.stdout and "Traceback" not in result.stdout + result.stderr
    run = workdir / "saves" / "run"  # relative output_dir: against the working directory, as LLaMA-Factory does
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert events[0]["type"] == "started" and events[0]["total_steps"] == 2
    assert events[-1]["type"] == "completed" and events[-1]["step"] == 2
    assert yaml.safe_load((run / "training_args.yaml").read_text())["learning_rate"] == 1e-3  # lr is an alias
    assert (run / "adapter_model.safetensors").is_file()
