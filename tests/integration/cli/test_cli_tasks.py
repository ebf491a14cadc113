"""`tuneforge tasks …` against a real server (uvicorn in a thread, the tiny model): a LLaMA-Factory YAML becomes a
task that `logs -f` follows to completion, showing the worker's step lines as they are written; create warns of
samples longer than cutoff_len; list / show / delete show what a user needs; bad input names the field (exit 2); no
server is one clear line (exit 1)."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.e2e.log_gate import LogGate
from tests.fixtures.auth import api_get
from tests.fixtures.live_server import free_port, live_server
from tests.integration.service.conftest import QA
from tuneforge.cli import tasks as tasks_cli
from tuneforge.cli.main import app
from tuneforge.cli.remote import task_body
from tuneforge.settings import Settings

# What the worker writes to train.log at every logging step.
STEP_LINE = re.compile(r"step (\d+)/(\d+) loss \d+\.\d+ lr \S+ grad_norm \S+ tokens/s \d+ eta \S+")


@pytest.fixture()
def server_settings(tmp_path: Path, tiny_model_dir: Path) -> Settings:
    return Settings(home=tmp_path / "home", allowed_roots=[tmp_path, tiny_model_dir.parent], cpu_slots=1,
                    poll_interval_s=0.2)


@pytest.fixture()
def server(server_settings: Settings) -> Iterator[str]:
    with live_server(server_settings, run_scheduler=True) as (url, _):
        yield url


@pytest.fixture()
def first_task_gate(server_settings: Settings) -> Iterator[LogGate]:
    """Holds the server's first task (run directory task-1) at its first logged step until the test releases it."""
    gate = LogGate(server_settings.runs_path / "task-1")
    yield gate
    gate.release()  # a failed test leaves no worker waiting on the gate
    gate.close()


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


class CommandOutput:
    """A `tuneforge` command in its own process, its output read line by line as it comes (as in a terminal)."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "tuneforge.cli.main", *args], stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, encoding="utf-8")
        self.lines: list[str] = []
        self._incoming: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, name="command-output", daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._incoming.put(line.rstrip("\n"))
        self._incoming.put(None)

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> str:
        """The first new line that matches; fails if the command ends first or no line matches within `timeout`."""
        deadline = time.monotonic() + timeout
        while (line := self._next(deadline)) is not None:
            if pattern.search(line):
                return line
        raise AssertionError(f"the command ended (exit {self.process.wait()}) without {pattern.pattern!r}:\n"
                             + "\n".join(self.lines))

    def finish(self, timeout: float) -> int:
        """Reads to the end; the command's exit code."""
        deadline = time.monotonic() + timeout
        while self._next(deadline) is not None:
            pass
        return self.process.wait(timeout=max(deadline - time.monotonic(), 1))

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def _next(self, deadline: float) -> str | None:
        try:
            line = self._incoming.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            raise AssertionError("no new output in time:\n" + "\n".join(self.lines)) from None
        if line is not None:
            self.lines.append(line)
        return line


def wait_for_step(server: str, task_id: int, step: int, timeout: float = 300) -> dict[str, Any]:
    """The task as the server reports it once it has reached `step` (or ended)."""
    deadline = time.monotonic() + timeout
    while True:
        task = api_get(f"{server}/finetuning/getTask", params={"id": task_id}).json()
        if (task.get("step") or 0) >= step or task["status"] in ("completed", "failed", "stopped"):
            return task
        assert time.monotonic() < deadline, f"task {task_id} stayed at step {task.get('step')} ({task['status']})"
        time.sleep(0.2)


def write_dataset_with_a_long_sample(workdir: Path) -> str:
    """qa.jsonl's short rows and one answer far longer than cutoff_len 64: exactly one sample gets cut."""
    rows = [{"instruction": q, "input": "", "output": a} for q, a in QA * 4]
    rows.append({"instruction": "Count to one hundred.", "input": "", "output": " ".join(map(str, range(1, 101)))})
    (workdir / "configs" / "long.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return "long.jsonl"


def test_a_yaml_becomes_a_task_that_logs_follows_to_completion(server, workdir, tiny_model_dir):
    config = write_config(workdir, tiny_model_dir)
    created = cli(server, "create", str(config), "--name", "qa-lora", "--description", "first try")
    assert created.exit_code == 0, created.output
    assert "created task 1 qa-lora" in created.output and "pending" in created.output
    assert "GiB per device" in created.output and "per epoch" in created.output
    assert "no sample is cut (16 samples, cutoff_len 64)" in created.output and "warning" not in created.output

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


def test_logs_follow_shows_each_step_line_while_the_task_runs(server, first_task_gate, workdir, tiny_model_dir):
    config = write_config(workdir, tiny_model_dir, dataset=write_dataset_with_a_long_sample(workdir), max_steps=3,
                          save_steps=10)
    created = cli(server, "create", str(config), "--name", "held-run")
    assert created.exit_code == 0, created.output
    task = json.loads(cli(server, "show", "1", "--json").output)
    assert Path(task["logPath"]).parent == first_task_gate.run_dir
    cut = task["estimate"]["dataset"]["truncation"][str(workdir / "configs" / "long.jsonl")]
    assert cut["samples"] == 17 and cut["over_cutoff"] == 1 and cut["tokens_cut"] > 0
    assert (f"warning: {workdir / 'configs' / 'long.jsonl'}: 1 of 17 samples exceed cutoff_len 64 and lose "
            f"{cut['tokens_cut']:,} tokens") in created.output

    follower = CommandOutput("tasks", "--server", server, "logs", "1", "-f")
    try:
        # The worker is held at its first logged step (the gate), so the line must be shown while the task runs.
        first = follower.wait_for(STEP_LINE, timeout=300)
        assert STEP_LINE.search(first).group(1, 2) == ("1", "3"), first
        held = wait_for_step(server, 1, step=1)
        assert (held["status"], held["step"]) == ("running", 1), held
        assert not [line for line in follower.lines if STEP_LINE.search(line) and line != first]

        first_task_gate.release()
        assert follower.finish(timeout=300) == 0, "\n".join(follower.lines)
    finally:
        follower.close()
    steps = [STEP_LINE.search(line).group(1) for line in follower.lines if STEP_LINE.search(line)]
    assert steps == ["1", "2", "3"], "\n".join(follower.lines)
    assert "completed" in follower.lines[-1] and "3/3" in follower.lines[-1], follower.lines[-1]


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
