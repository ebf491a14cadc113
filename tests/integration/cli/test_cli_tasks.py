"""`tuneforge tasks …` against a real server (uvicorn in a thread, the tiny model): a LLaMA-Factory YAML becomes a
task that `logs -f` follows to completion; list / show / delete show what a user needs; bad input names the field
(exit 2); no server is one clear line (exit 1)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.fixtures.live_server import free_port, live_server
from tests.integration.service.conftest import QA
from tuneforge.cli import tasks as tasks_cli
from tuneforge.cli.main import app
from tuneforge.cli.remote import task_body
from tuneforge.settings import Settings


@pytest.fixture()
def server(tmp_path: Path, tiny_model_dir: Path) -> Iterator[str]:
    settings = Settings(home=tmp_path / "home", allowed_roots=[tmp_path, tiny_model_dir.parent], cpu_slots=1,
                        poll_interval_s=0.2)
    with live_server(settings, run_scheduler=True) as (url, _):
        yield url


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's shell: a project folder with configs/ (the YAML and its dataset next to it) as the cwd."""
    (tmp_path / "configs").mkdir()
    rows = [{"instruction": q, "input": "", "output": a} for q, a in QA * 4]
    (tmp_path / "configs" / "qa.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tasks_cli.console, "width", 160)  # tables as a wide terminal shows them
    return tmp_path


def write_config(workdir: Path, model: Path, **keys: Any) -> Path:
    """A LLaMA-Factory YAML with paths relative to its folder (dataset) and to the cwd (output_dir)."""
    config = {"model_name_or_path": str(model), "stage": "sft", "do_train": True, "finetuning_type": "lora",
              "template": "chatml", "dataset": "qa.jsonl", "cutoff_len": 64, "per_device_train_batch_size": 4,
              "learning_rate": 5e-3, "max_steps": 6, "logging_steps": 1, "save_steps": 3, "lora_rank": 8,
              "output_dir": "saves/qa-lora", "report_to": "none", "seed": 7}
    config.update(keys)
    path = workdir / "configs" / "qa_lora_sft.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def cli(server: str, *args: str, input: str | None = None):
    result = CliRunner().invoke(app, ["tasks", "--server", server, *args], input=input)
    assert "Traceback" not in result.output, result.output
    return result


def test_a_yaml_becomes_a_task_that_logs_follows_to_completion(server, workdir, tiny_model_dir):
    config = write_config(workdir, tiny_model_dir)
    created = cli(server, "create", str(config), "--name", "qa-lora", "--description", "first try")
    assert created.exit_code == 0, created.output
    assert "created task 1 qa-lora" in created.output and "pending" in created.output
    assert "GiB per device" in created.output and "per epoch" in created.output

    followed = cli(server, "logs", "1", "-f")
    assert followed.exit_code == 0, followed.output
    assert "completed" in followed.output.splitlines()[-1], followed.output
    assert "6/6" in followed.output

    listed = cli(server, "list")
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.output.splitlines() if "qa-lora" in line)
    assert "✅ completed" in row and "100%" in row and "6/6" in row
    items = json.loads(cli(server, "list", "--status", "completed", "--json").output)["items"]
    assert [(t["name"], t["status"]) for t in items] == [("qa-lora", "completed")]
    detail = json.loads(cli(server, "show", "1", "--json").output)
    assert detail["datasetPath"] == str(workdir / "configs" / "qa.jsonl")  # relative to the config file
    assert detail["outputPath"] == str(workdir / "saves" / "qa-lora")  # relative to the cwd, as `train` does
    assert (workdir / "saves" / "qa-lora" / "adapter_config.json").is_file()

    shown = cli(server, "show", "1")
    assert shown.exit_code == 0 and "tuneforge.engine.run" in shown.output and "step 6:" in shown.output

    deleted = cli(server, "delete", "1", input="y\n")
    assert deleted.exit_code == 0, deleted.output
    assert "kept" in deleted.output and (workdir / "saves" / "qa-lora" / "adapter_config.json").is_file()
    gone = cli(server, "show", "1")
    assert gone.exit_code == 2 and "task 1 does not exist" in gone.output


def test_bad_input_names_the_field_and_exits_2(server, workdir, tiny_model_dir):
    refused = cli(server, "create", str(write_config(workdir, tiny_model_dir, lora_rank=0)), "--name", "bad-rank")
    assert refused.exit_code == 2, refused.output
    assert "trainingArgs.lora_rank" in refused.output
    unknown = cli(server, "create", str(write_config(workdir, tiny_model_dir)), "lora_rnk=8", "--name", "typo")
    assert unknown.exit_code == 2 and "lora_rnk" in unknown.output and "lora_rank" in unknown.output
    missing = cli(server, "create", str(write_config(workdir, tiny_model_dir, dataset="nope.jsonl")), "--name", "x1")
    assert missing.exit_code == 2 and "datasetPath" in missing.output
    assert str(workdir / "configs" / "nope.jsonl") in missing.output  # the path the user meant, not the server's cwd
    assert json.loads(cli(server, "list", "--json").output)["total"] == 0
    stop = cli(server, "stop", "42")
    assert stop.exit_code == 2 and "task 42 does not exist" in stop.output


def test_no_server_is_one_clear_line_and_exit_1():
    url = f"http://127.0.0.1:{free_port()}"
    for args in (["list"], ["logs", "1", "-f"], ["show", "3"]):
        result = CliRunner().invoke(app, ["tasks", "--server", url, *args])
        assert result.exit_code == 1, result.output
        assert result.output.strip() == f"error: no tuneforge server at {url} — start one with `tuneforge serve`"


def test_devices_and_experiments(server, tiny_model_dir, workdir):
    runner = CliRunner()
    devices = runner.invoke(app, ["gpus", "--server", server])
    assert devices.exit_code == 0 and "CPU slots" in devices.output and "free" in devices.output
    made = runner.invoke(app, ["experiments", "--server", server, "create", "lr-sweep", "--base-model",
                               str(tiny_model_dir), "--dataset", "configs/qa.jsonl", "--template", "chatml"])
    assert made.exit_code == 0, made.output
    shown = runner.invoke(app, ["experiments", "--server", server, "show", "1"])
    assert shown.exit_code == 0 and "lr-sweep" in shown.output and "--experiment 1" in shown.output


def test_the_body_keeps_dataset_info_names_and_lets_flags_win(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "dataset_info.json").write_text('{"identity": {"file_name": "identity.json"}}')
    config = {"model": "Qwen/Qwen2.5-0.5B", "dataset": "identity,extra/a.jsonl", "num_train_epochs": "auto", "lr": 1e-4}
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.chdir(tmp_path)
    body = task_body(tmp_path / "mine.yaml", ["lora_rank=16"], name="n", gpus="0,1")
    assert body["baseModel"] == "Qwen/Qwen2.5-0.5B"  # a hub id, not a path
    assert body["datasetPath"] == f"identity,{tmp_path / 'extra' / 'a.jsonl'}"
    assert body["trainingArgs"] == {"num_train_epochs": "auto", "lr": 1e-4, "lora_rank": 16,
                                    "dataset_dir": str(tmp_path / "data")}
    assert body["gpuConfig"] == {"cuda_visible_devices": "0,1"} and "outputPath" not in body
    flagged = task_body(tmp_path / "mine.yaml", [], name="n", dataset="data", output="out", gpu_count=2)
    assert flagged["datasetPath"] == str(tmp_path / "data") and flagged["outputPath"] == str(tmp_path / "out")
    assert flagged["gpuConfig"] == {"gpu_count": 2}
