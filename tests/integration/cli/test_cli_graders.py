"""`tuneforge graders …` against a real server: create from YAML or JSON, list, show, run on a JSONL file (a table of
each score with its reason by line, and the mean), delete; a bad grader file exits 2 naming the field."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.fixtures.auth import api_get
from tests.fixtures.live_server import live_server
from tuneforge.cli.main import app
from tuneforge.graders.sandbox import sandbox_problem
from tuneforge.settings import Settings

EXACT_YAML = """\
type: string_check
name: exact
input: "{{sample.output_text}}"
reference: "{{item.answer}}"
operation: eq
"""


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[str]:
    with live_server(Settings(home=tmp_path / "home", cpu_slots=1), run_scheduler=False) as (url, _):
        yield url


def cli(server: str, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, ["graders", "--server", server, *args])
    assert result.exit_code == code, result.output
    return " ".join(result.output.split())  # one line, whatever the terminal's width


def samples_file(tmp_path: Path, pairs: list[tuple[str, str]]) -> Path:
    path = tmp_path / "samples.jsonl"
    lines = [json.dumps({"sample": {"output_text": out}, "item": {"answer": answer}}) for out, answer in pairs]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_create_list_show_run_and_delete(server, tmp_path):
    grader_file = tmp_path / "exact-answer.yaml"
    grader_file.write_text(EXACT_YAML, encoding="utf-8")
    said = cli(server, "create", str(grader_file), "--description", "the answer, exactly")
    assert said.startswith("created grader 1 exact-answer (string_check)")

    listed = cli(server, "list")
    assert "exact-answer" in listed and "string_check" in listed and "the answer, exactly" in listed
    shown = cli(server, "show", "exact-answer")
    assert '"operation": "eq"' in shown and "id 1" in shown

    samples = samples_file(tmp_path, [("Paris", "Paris"), ("London", "Paris"), ("Rome", "Rome"), ("x", "y")])
    printed = cli(server, "run", "exact-answer", "--samples", str(samples))
    assert "mean 0.5 over 4 samples" in printed
    as_json = json.loads(CliRunner().invoke(app, ["graders", "--server", server, "run", "1", "--samples",
                                                  str(samples), "--json"]).output)
    assert [r["score"] for r in as_json["results"]] == [1.0, 0.0, 1.0, 0.0] and as_json["mean"] == 0.5

    assert cli(server, "delete", "exact-answer") == "deleted grader 1 exact-answer"
    assert api_get(f"{server}/graders/getGraderList").json()["total"] == 0
    assert "no such grader" in cli(server, "show", "exact-answer", code=2)


def test_run_prints_each_score_with_its_reason_by_line(server, tmp_path):
    if sandbox_problem():
        pytest.skip(f"python graders: {sandbox_problem()}")
    grader = {"type": "python", "name": "inverse length",
              "source": "def grade(sample, item):\n    return 1.0 / len(sample['output_text'])\n"}
    (tmp_path / "inverse.json").write_text(json.dumps(grader), encoding="utf-8")
    cli(server, "create", str(tmp_path / "inverse.json"), "--name", "inverse-length")
    samples = samples_file(tmp_path, [("ab", ""), ("", ""), ("abcd", "")])
    result = CliRunner().invoke(app, ["graders", "--server", server, "run", "inverse-length", "--samples",
                                      str(samples)])
    assert result.exit_code == 0, result.output
    rows = [[cell.strip() for cell in re.split("[│┃]", line)[1:4]] for line in result.output.splitlines()
            if len(re.findall("[│┃]", line)) >= 3]
    assert rows[0] == ["line", "score", "reason"]
    assert [row[:2] for row in rows[1:] if row[0]] == [["1", "0.5"], ["2", "0"], ["3", "0.25"]]
    assert "ZeroDivisionError" in " ".join(" ".join(row) for row in rows)
    assert "mean 0.25 over 3 samples" in result.output


def test_bad_files_exit_2_naming_the_field_or_the_line(server, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXACT_YAML.replace("operation: eq", "operation: equals"), encoding="utf-8")
    assert "grader.operation" in cli(server, "create", str(bad), code=2)
    assert "grader.operation" in cli(server, "validate", str(bad), code=2)
    good = tmp_path / "exact.yaml"
    good.write_text(EXACT_YAML, encoding="utf-8")
    assert "a valid string_check grader" in cli(server, "validate", str(good))
    cli(server, "create", str(good))
    assert "exists" in cli(server, "create", str(good), code=2)
    shipped = Path(__file__).resolve().parents[3] / "examples" / "graders" / "exact_answer.json"
    if shipped.is_file():  # the examples a user starts from are taken as they are
        assert cli(server, "create", str(shipped)).startswith("created grader")

    samples = samples_file(tmp_path, [("a", "a")])
    samples.write_text(samples.read_text() + "\n{not json\n", encoding="utf-8")
    assert f"{samples}:3: not valid JSON" in cli(server, "run", "exact", "--samples", str(samples), code=2)
    samples.write_text(json.dumps({"sample": {"output_text": 5}}) + "\n", encoding="utf-8")
    assert f"{samples}:1 sample.output_text: must be text" in cli(server, "run", "exact", "--samples", str(samples),
                                                                   code=2)
