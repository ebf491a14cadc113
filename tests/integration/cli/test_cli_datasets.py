"""`tuneforge datasets …` against a real server (uvicorn in a thread, no scheduler: tasks stay pending): a folder is
uploaded and validated, a bad line is named by file:line (exit 2), list / show / stats / preview print what a user
needs, and deletion is refused while a task uses the dataset."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.fixtures.auth import api_post, env_headers
from tests.fixtures.live_server import free_port, live_server
from tests.integration.service.conftest import QA, task_body
from tuneforge.cli import datasets as datasets_cli
from tuneforge.cli.main import app
from tuneforge.settings import Settings

ROWS = [{"instruction": q, "input": "", "output": a} for q, a in QA * 6]


@pytest.fixture()
def server(tmp_path: Path, tiny_model_dir: Path) -> Iterator[str]:
    settings = Settings(home=tmp_path / "home", allowed_roots=[tmp_path, tiny_model_dir.parent], cpu_slots=1,
                        poll_interval_s=0.2)
    with live_server(settings, run_scheduler=False) as (url, _):
        yield url


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's shell: data/qa/ in seed 003's layout (train.jsonl, valid.jsonl) and a dataset_info.json."""
    folder = tmp_path / "data" / "qa"
    folder.mkdir(parents=True)
    _write(folder / "train.jsonl", ROWS)
    _write(folder / "valid.jsonl", ROWS[:4])
    (folder / "dataset_info.json").write_text("{}", encoding="utf-8")  # LLaMA-Factory's index is not data
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(datasets_cli.console, "width", 160)  # tables as a wide terminal shows them
    return tmp_path


def _write(path: Path, rows: list[dict], extra: str = "") -> None:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n" + extra, encoding="utf-8")


def cli(server: str, *args: str, input: str | None = None):
    result = CliRunner().invoke(app, ["datasets", "--server", server, *args], input=input)
    assert "Traceback" not in result.output, result.output
    return result


def test_a_bad_line_is_named_by_file_and_line_and_exits_2(server, workdir):
    bad = workdir / "bad"
    bad.mkdir()
    _write(bad / "train.jsonl", ROWS[:2], extra='{"instruction": "q", "output": ""}\n{"instruction": oops}\n')
    created = cli(server, "create", "qa-bad", str(bad))
    assert created.exit_code == 2, created.output
    assert "created dataset 1 qa-bad: qa-bad@v1 (1 file" in created.output
    assert "invalid" in created.output and "2 problems" in created.output
    assert "train.jsonl:3: output:" in created.output and "train.jsonl:4:" in created.output

    again = cli(server, "validate", "1")
    assert again.exit_code == 2 and "train.jsonl:4:" in again.output
    report = json.loads(cli(server, "validate", "1", "--json").output)
    assert report["status"] == "invalid" and report["problemCount"] == 2


def test_a_good_folder_is_uploaded_validated_inspected_and_deleted(server, workdir, tiny_model_dir):
    created = cli(server, "create", "qa-good", "data/qa", "--description", "seed 003 layout")
    assert created.exit_code == 0, created.output
    assert "uploading 2 files" in created.output and "2 files" in created.output
    assert "✅ valid" in created.output and "rows 28 (train 24 · valid 4)" in created.output

    listed = cli(server, "list")
    row = next(line for line in listed.output.splitlines() if "qa-good" in line)
    assert "✅ valid" in row and "v1" in row and " 28 " in row and "sft" in row
    assert json.loads(cli(server, "list", "--json").output)["items"][0]["name"] == "qa-good"
    shown = cli(server, "show", "1")
    assert shown.exit_code == 0 and "seed 003 layout" in shown.output and "qa-good@v1" in shown.output
    assert "train: train.jsonl" in shown.output

    same = cli(server, "add-version", "1", "data/qa/train.jsonl", "data/qa/valid.jsonl")
    assert same.exit_code == 0 and "unchanged: same files as v1" in same.output, same.output
    from_server = cli(server, "add-version", "1", "--server-path", "data/qa")  # relative to this shell
    assert from_server.exit_code == 0 and "unchanged: same files as v1" in from_server.output, from_server.output

    stats = cli(server, "stats", "1", "--cutoff-len", "16", "--model", str(tiny_model_dir))
    assert stats.exit_code == 0, stats.output
    assert "p50" in stats.output and "p95" in stats.output and "over cutoff_len 16:" in stats.output
    assert str(tiny_model_dir / "tokenizer.json") in stats.output  # counted with the model's own tokenizer
    assert "exact duplicates (24): train.jsonl:5 = train.jsonl:1" in stats.output and "█" in stats.output

    preview = cli(server, "preview", "1", "-n", "2", "--model", str(tiny_model_dir), "--template", "default")
    assert preview.exit_code == 0, preview.output
    assert "── train.jsonl:1" in preview.output and "── train.jsonl:2" in preview.output
    assert "The code word is Paris." in preview.output and "trained " in preview.output
    sample = json.loads(cli(server, "preview", "1", "-n", "1", "--model", str(tiny_model_dir), "--json").output)
    segments = sample["samples"][0]["segments"]
    assert {s["trained"] for s in segments} == {True, False}

    task = api_post(f"{server}/finetuning/createTask", json=task_body("uses-qa", tiny_model_dir, "qa-good"))
    assert task.status_code == 201, task.text
    refused = cli(server, "delete", "1", "--yes")
    assert refused.exit_code == 2 and "uses-qa" in refused.output, refused.output
    httpx.delete(f"{server}/finetuning/deleteTask", params={"id": task.json()["id"]},
                 headers=env_headers()).raise_for_status()
    deleted = cli(server, "delete", "1", "--yes")
    assert deleted.exit_code == 0 and "deleted dataset 1 qa-good" in deleted.output
    assert cli(server, "show", "1").exit_code == 2


def test_bad_arguments_are_refused_before_anything_is_sent(server, workdir):
    missing = cli(server, "create", "qa", "nope.jsonl", "data/qa/dataset_info.json")
    assert missing.exit_code == 2, missing.output
    assert "nope.jsonl does not exist" in missing.output and "index, not data" in missing.output
    twice = cli(server, "create", "qa", "data/qa", "data/qa/train.jsonl")
    assert twice.exit_code == 2 and "train.jsonl is given twice" in twice.output
    neither = cli(server, "create", "qa")
    assert neither.exit_code == 2 and "--server-path" in neither.output
    name = cli(server, "create", "医疗数据", "data/qa")
    assert name.exit_code == 2 and "name:" in name.output
    assert json.loads(cli(server, "list", "--json").output)["total"] == 0


def test_no_server_is_one_clear_line_and_exit_1():
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(app, ["datasets", "--server", url, "list"])
    assert result.exit_code == 1
    assert result.output.strip() == f"error: no tuneforge server at {url} — start one with `tuneforge serve`"
