"""`tuneforge models export` and `models exports` against a real server (uvicorn in a thread, the tiny model): a
GPTQ export without calibration data is refused with the server's message at its field (exit 2); a plain export with
--wait follows the job to its end and lists the files it wrote with their sizes; the list shows the job."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.fixtures.auth import api_get, api_post
from tests.fixtures.live_server import live_server
from tuneforge.cli import models as models_cli
from tuneforge.cli.main import app
from tuneforge.settings import Settings


@pytest.fixture()
def server(tmp_path: Path, tiny_model_dir: Path) -> Iterator[str]:
    settings = Settings(home=tmp_path / "home", allowed_roots=[tmp_path, tiny_model_dir.parent], cpu_slots=1)
    with live_server(settings, run_scheduler=False) as (url, _):
        yield url


@pytest.fixture()
def model_id(server: str, tiny_model_dir: Path) -> int:
    created = api_post(f"{server}/models/registerModel", json={"name": "tiny-base", "source": str(tiny_model_dir)})
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models_cli.console, "width", 200)  # file names and tables on one line each
    monkeypatch.setattr(models_cli, "EXPORT_POLL_S", 0.2)  # --wait sees the end sooner; nothing asserts speed


def cli(server: str, *args: str):
    result = CliRunner().invoke(app, ["models", "--server", server, *args])
    assert "Traceback" not in result.output, result.output
    return result


def test_a_gptq_export_without_calibration_data_is_refused_at_its_field(server, model_id):
    refused = cli(server, "export", str(model_id), "--quantization-bit", "4", "--quantization-group-size", "-1")
    assert refused.exit_code == 2, refused.output
    output = " ".join(refused.output.split())
    assert "quantizationDataset: required with quantization_bit" in output
    assert api_get(f"{server}/models/getExportList").json()["total"] == 0  # nothing was started


@pytest.mark.timeout(300)
def test_an_export_with_wait_follows_the_job_and_lists_its_files(server, model_id, tmp_path):
    target = tmp_path / "exported-tiny"
    done = cli(server, "export", str(model_id), "--dtype", "float16", "--output-dir", str(target), "--wait")
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    (job,) = api_get(f"{server}/models/getExportList").json()["items"]
    assert job["status"] == "completed" and job["dtype"] == "float16" and job["quantization"] is None
    assert job["maxShardSizeGb"] == 5.0  # not given: the server's default
    assert f"export {job['id']} completed into {target}" in lines
    for name in job["files"]:  # each file the job wrote, with its size
        assert (target / name).is_file()
        assert any(name in line and ("B" in line.split(name)[-1]) for line in lines), (name, done.output)
    assert any(name.endswith(".safetensors") for name in job["files"])

    listed = cli(server, "exports")
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.output.splitlines() if job["id"] in line)
    assert "tiny-base" in row and "completed" in row and "100 %" in row and "float16" in row

    as_json = cli(server, "exports", "--json")
    assert as_json.exit_code == 0 and f'"id": "{job["id"]}"' in as_json.output


@pytest.mark.timeout(300)
def test_an_export_that_fails_prints_its_error_and_hint_and_exits_1(server, model_id, tmp_path: Path):
    # a conversation without its answer: the job refuses to calibrate on data it cannot read as conversations
    calibration = tmp_path / "calibration.jsonl"
    calibration.write_text('{"instruction": "Hi?", "output": "Hello."}\n{"instruction": "No answer"}\n')
    failed = cli(server, "export", str(model_id), "--quantization-bit", "4", "--quantization-dataset",
                 str(calibration), "--quantization-group-size", "64", "--quantization-nsamples", "4",
                 "--quantization-maxlen", "32", "--wait")
    assert failed.exit_code == 1, failed.output
    output = " ".join(failed.output.split())
    (job,) = api_get(f"{server}/models/getExportList").json()["items"]
    assert job["status"] == "failed" and job["quantization"]["bits"] == 4
    assert f"error: export {job['id']} failed: {' '.join(job['error'].split())}" in output
    assert job["hint"] and f"hint: {' '.join(job['hint'].split())}" in output
    listed = cli(server, "exports").output
    assert "GPTQ int4 · g64" in next(line for line in listed.splitlines() if job["id"] in line)
    assert job["error"].startswith("quantization_dataset: ") and "calibration.jsonl:2" in job["error"]
