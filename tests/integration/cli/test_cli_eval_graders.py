"""`tuneforge eval run --grader …` against a real server: a stored grader by name and a grader file sent inline score
a real evaluation of the tiny model; `eval show` lists each grader's mean per model beside BLEU / ROUGE with the
change, and each answer's grade with the reason a grader failed; a missing file or an unknown name exits 2 and starts
nothing."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.fixtures.auth import api_get, api_post
from tests.fixtures.eval_reports import seed_graded_evaluation
from tests.fixtures.live_server import live_server
from tuneforge.cli.main import app
from tuneforge.service.runtime.jobs import SPEC
from tuneforge.settings import Settings

EXACT = {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}",
         "reference": "{{item.reference_answer}}", "operation": "eq"}
CLOSE_YAML = """\
type: text_similarity
name: close
input: "{{sample.output_text}}"
reference: "{{item.reference_answer}}"
evaluation_metric: fuzzy_match
"""


@dataclass
class Server:
    url: str
    platform: Any
    model_id: int


@pytest.fixture()
def server(tmp_path: Path, tiny_model_dir: Path) -> Iterator[Server]:
    settings = Settings(home=tmp_path / "home", allowed_roots=[tmp_path, tiny_model_dir.parent], cpu_slots=1)
    with live_server(settings, run_scheduler=False) as (url, platform):
        model = api_post(f"{url}/models/registerModel", json={"name": "tiny", "source": str(tiny_model_dir)})
        assert model.status_code == 201, model.text
        stored = api_post(f"{url}/graders/createGrader", json={"name": "exact-answer", "grader": EXACT})
        assert stored.status_code == 201, stored.text
        yield Server(url, platform, model.json()["id"])


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each table row on one line, its cells unwrapped. The CLI's console measured the terminal when it was first
    imported (COLUMNS set now would come too late in a full run), so its width is set itself."""
    from tuneforge.cli import tasks as tasks_cli

    monkeypatch.setattr(tasks_cli.console, "width", 400)


def cli(server: Server, *args: str, code: int = 0) -> str:
    """What the command printed as one line of words: the tables' borders dropped, blanks collapsed."""
    result = CliRunner().invoke(app, ["eval", "--server", server.url, *args])
    assert result.exit_code == code, result.output
    return " ".join(re.sub(r"[\u2500-\u257f]", " ", result.output).split())


def test_run_scores_with_a_stored_grader_and_a_grader_file(server, tmp_path):
    close = tmp_path / "close.yaml"
    close.write_text(CLOSE_YAML, encoding="utf-8")
    printed = cli(server, "run", "tiny", "--dataset", "identity", "--split", "train", "--max-samples", "2",
                  "--max-new-tokens", "4", "--grader", "exact-answer", "--grader", str(close))
    assert "completed" in printed
    # one model (a base model has no baseline): each grader's mean beside BLEU / ROUGE
    assert "BLEU-4" in printed and "grader exact" in printed and "grader close" in printed

    evaluation = api_get(f"{server.url}/evaluations/getEvaluationList").json()["items"][0]
    spec = json.loads(Path(evaluation["jobDir"], SPEC).read_text(encoding="utf-8"))
    assert [g["name"] for g in spec["graders"]] == ["exact", "close"]  # the stored one resolved, the file inline
    assert spec["graders"][1]["evaluation_metric"] == "fuzzy_match"
    [scores] = evaluation["scores"]
    assert set(scores["graders"]) == {"exact", "close"}
    assert f"grader close {scores['graders']['close']:.3f}" in printed
    assert "close" in cli(server, "list")  # the list's graders column


def test_show_lists_each_graders_mean_per_model_the_change_and_each_answers_grade(server, tmp_path):
    evaluation_id = seed_graded_evaluation(server.platform, server.model_id)
    printed = cli(server, "show", str(evaluation_id))
    assert "grader exact 0.500 1.000 +0.500" in printed
    assert "grader short 0.125 (1 failed) 0.125" in printed
    assert "BLEU-4 10.00 30.00 +20.00" in printed
    # the best answer of the fine-tune beside the base's, each with its grade and the reason one failed
    assert "exact 1.00" in printed and "short 0.00 failed: ZeroDivisionError: division by zero" in printed


def test_a_missing_grader_file_or_an_unknown_name_exits_2_and_starts_nothing(server, tmp_path):
    missing = cli(server, "run", "tiny", "--dataset", "identity", "--grader", str(tmp_path / "nope.json"), code=2)
    assert "nope.json" in missing and "no such file" in missing
    broken = tmp_path / "broken.yaml"
    broken.write_text("type: [unclosed\n", encoding="utf-8")
    assert "not valid YAML" in cli(server, "run", "tiny", "--dataset", "identity", "--grader", str(broken), code=2)
    unknown = cli(server, "run", "tiny", "--dataset", "identity", "--grader", "no-such-grader", code=2)
    assert "no grader named 'no-such-grader'" in unknown and "graders.0" in unknown
    assert api_get(f"{server.url}/evaluations/getEvaluationList").json()["total"] == 0
