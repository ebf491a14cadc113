"""`tuneforge eval run --grader …` against a real server: a stored grader by name and a grader file sent inline score
a real evaluation of the tiny model; `eval show` lists each grader's mean per model beside BLEU / ROUGE with the
change, and each answer's grade with the reason a grader failed; a missing file or an unknown name exits 2 and starts
nothing."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from tests.fixtures.live_server import live_server
from tuneforge.cli.main import app
from tuneforge.schemas.eval_spec import RESULTS_FILE, EvalResults
from tuneforge.service.runtime.jobs import SPEC
from tuneforge.settings import Settings
from tuneforge.store import Evaluation

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
        model = httpx.post(f"{url}/models/registerModel", json={"name": "tiny", "source": str(tiny_model_dir)})
        assert model.status_code == 201, model.text
        stored = httpx.post(f"{url}/graders/createGrader", json={"name": "exact-answer", "grader": EXACT})
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

    evaluation = httpx.get(f"{server.url}/evaluations/getEvaluationList").json()["items"][0]
    spec = json.loads(Path(evaluation["jobDir"], SPEC).read_text(encoding="utf-8"))
    assert [g["name"] for g in spec["graders"]] == ["exact", "close"]  # the stored one resolved, the file inline
    assert spec["graders"][1]["evaluation_metric"] == "fuzzy_match"
    [scores] = evaluation["scores"]
    assert set(scores["graders"]) == {"exact", "close"}
    assert f"grader close {scores['graders']['close']:.3f}" in printed
    assert "close" in cli(server, "list")  # the list's graders column


def results(folder: Path) -> None:
    """results.json as the engine writes it: base vs fine-tuned on two samples, graded by two graders; the python
    grader failed on one of the base's answers."""
    def out(text: str, exact: float, close: float, error: str | None = None) -> dict[str, Any]:
        return {"text": text, "bleu_4": 10.0, "rouge_1": 20.0, "rouge_2": 10.0, "rouge_l": 20.0, "loss": 1.0,
                "graders": {"exact": exact, "close": close}, "grader_errors": {"exact": error} if error else {}}

    samples = [
        {"index": 0, "prompt": "Capital of France?", "reference": "Paris",
         "outputs": {"base": out("", 0.0, 0.0, "ZeroDivisionError: division by zero"),
                     "tuned": out("Paris", 1.0, 1.0)}},
        {"index": 1, "prompt": "Capital of Italy?", "reference": "Rome",
         "outputs": {"base": out("Rome", 1.0, 1.0), "tuned": out("Rome", 1.0, 1.0)}},
    ]
    models = [
        {"label": "base", "bleu_4": 10.0, "rouge_l": 20.0, "samples": 2, "graders": {"exact": 0.5, "close": 0.5},
         "grader_failures": {"exact": 1}, "best": [1, 0], "worst": [0, 1]},
        {"label": "tuned", "bleu_4": 30.0, "rouge_l": 60.0, "samples": 2, "graders": {"exact": 1.0, "close": 0.875},
         "best": [0, 1], "worst": [1, 0]},
    ]
    report = EvalResults.model_validate({"models": models, "samples": samples, "dataset": "capitals",
                                         "split": "test"})
    folder.mkdir(parents=True)
    (folder / RESULTS_FILE).write_text(report.model_dump_json(), encoding="utf-8")


def test_show_lists_each_graders_mean_per_model_the_change_and_each_answers_grade(server, tmp_path):
    folder = server.platform.settings.home / "evaluations" / "eval-seeded"
    results(folder)
    with server.platform.db.session() as session:
        row = Evaluation(model_id=server.model_id, dataset="capitals", split="test", status="completed",
                         baseline="base: tiny", job_dir=str(folder), percentage=100.0, options={},
                         created_at=time.time(), scores=[])
        session.add(row)
        session.flush()
        evaluation_id = row.id
    printed = cli(server, "show", str(evaluation_id))
    assert "grader exact 0.500 (1 failed) 1.000 +0.500" in printed
    assert "grader close 0.500 0.875 +0.375" in printed
    assert "BLEU-4 10.00 30.00 +20.00" in printed
    # the best answer of the fine-tune beside the base's, each with its grade and the reason one failed
    assert "exact 1.00" in printed and "exact 0.00 failed: ZeroDivisionError: division by zero" in printed


def test_a_missing_grader_file_or_an_unknown_name_exits_2_and_starts_nothing(server, tmp_path):
    missing = cli(server, "run", "tiny", "--dataset", "identity", "--grader", str(tmp_path / "nope.json"), code=2)
    assert "nope.json" in missing and "no such file" in missing
    broken = tmp_path / "broken.yaml"
    broken.write_text("type: [unclosed\n", encoding="utf-8")
    assert "not valid YAML" in cli(server, "run", "tiny", "--dataset", "identity", "--grader", str(broken), code=2)
    unknown = cli(server, "run", "tiny", "--dataset", "identity", "--grader", "no-such-grader", code=2)
    assert "no grader named 'no-such-grader'" in unknown and "graders.0" in unknown
    assert httpx.get(f"{server.url}/evaluations/getEvaluationList").json()["total"] == 0
