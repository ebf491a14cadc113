"""Graders on the evaluation pages (TestClient, no browser): the create form offers the stored graders in a
multi-select (a judge grader shown but not offered) and starts an evaluation with the ones picked, or keeps the form
with each problem named; the report shows each grader's mean per model beside BLEU / ROUGE with the change, and per
sample each answer's grade with the reason a grader failed.

The report is results.json written the way the engine writes it; nothing evaluates here except the one job the form
starts, which the test stops."""

from __future__ import annotations

import contextlib
import json
import re
from html import unescape
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.eval_reports import seed_graded_evaluation
from tuneforge.service.errors import ServiceError
from tuneforge.service.runtime.jobs import SPEC
from tuneforge.web.i18n import catalog

EXACT = {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}",
         "reference": "{{item.reference_answer}}", "operation": "eq"}
JUDGE = {"type": "score_model", "name": "judge", "model": "my-judge", "range": [0, 1],
         "input": [{"role": "user", "content": "Score {{sample.output_text}}"}]}


def text_of(html: str) -> str:
    """The page as a reader sees it: tags dropped, entities decoded, whitespace collapsed."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


@pytest.fixture()
def model_id(client: Any, tiny_model_dir: Path) -> int:
    model = client.post("/models/registerModel", json={"name": "tiny", "source": str(tiny_model_dir)})
    assert model.status_code == 201, model.text
    for name, grader in (("exact-answer", EXACT), ("judge", JUDGE)):
        stored = client.post("/graders/createGrader", json={"name": name, "grader": grader})
        assert stored.status_code == 201, stored.text
    return int(model.json()["id"])


def form_problems(html: str) -> dict[str, str]:
    return {field: text_of(text) for field, text in re.findall(r'<li data-error-field="([^"]*)">(.*?)</li>', html)}


def test_the_form_offers_stored_graders_and_starts_an_evaluation_with_those_picked(client, platform, model_id):
    page = client.get("/console/evaluations/new", params={"modelId": model_id})
    assert page.status_code == 200
    assert re.search(rf'<option value="{model_id}" data-kind="base" selected>tiny', page.text)
    picker = re.search(r'<select id="evaluation-graders" name="graders" multiple.*?</select>', page.text, re.S).group(0)
    options = dict(re.findall(r'<option value="([^"]+)" data-type="\w+"([^>]*)>', picker))
    assert set(options) == {"exact-answer", "judge"}
    assert "disabled" not in options["exact-answer"] and "disabled" in options["judge"]  # no judge in a job
    assert 'href="/console/evaluations/new"' in client.get("/console/evaluations").text

    started = client.post("/console/evaluations/new", follow_redirects=False, data={
        "modelId": str(model_id), "dataset": "identity", "split": "train", "maxSamples": "2", "maxNewTokens": "4",
        "graders": ["exact-answer"]})
    assert started.status_code == 303, started.text
    evaluation_id = int(started.headers["location"].rsplit("/", 1)[1])
    assert started.headers["location"] == f"/console/evaluations/{evaluation_id}"
    try:
        evaluation = platform.evaluations.get(evaluation_id)
        spec = json.loads(Path(evaluation["jobDir"], SPEC).read_text(encoding="utf-8"))
        assert [g["name"] for g in spec["graders"]] == ["exact"] and spec["max_samples"] == 2
        assert spec["split"] == "train" and spec["max_new_tokens"] == 4
    finally:
        with contextlib.suppress(ServiceError):  # only a job still running can be stopped
            platform.evaluations.stop(evaluation_id)


def test_a_refused_form_keeps_what_was_picked_and_names_each_problem(client, platform, model_id):
    refused = client.post("/console/evaluations/new", data={
        "modelId": str(model_id), "dataset": "identity", "maxSamples": "50", "graders": ["exact-answer", "gone"]})
    assert refused.status_code == 422
    problems = form_problems(refused.text)
    assert list(problems) == ["graders.1"] and "gone: no grader named 'gone'" in problems["graders.1"]
    assert re.search(r'<option value="exact-answer" data-type="string_check" selected>', refused.text)
    assert 'value="identity"' in refused.text  # the dataset as typed

    bad_number = client.post("/console/evaluations/new", data={"modelId": str(model_id), "maxSamples": "many"})
    assert bad_number.status_code == 422 and list(form_problems(bad_number.text)) == ["maxSamples"]
    assert 'value="many"' in bad_number.text
    judged = client.post("/console/evaluations/new", data={"modelId": str(model_id), "dataset": "identity",
                                                           "graders": ["judge"]})
    assert judged.status_code == 422 and "judge model" in text_of(judged.text)
    assert client.get("/evaluations/getEvaluationList").json()["total"] == 0


@pytest.fixture()
def report_id(platform: Any, model_id: int) -> int:
    return seed_graded_evaluation(platform, model_id)


def test_the_report_shows_each_graders_mean_per_model_with_the_change(client, report_id):
    html = client.get(f"/console/evaluations/{report_id}").text
    scores = html[html.index('id="evaluation-scores"'):html.index('id="best-samples"')]
    rows = dict(re.findall(r'<tr data-grader="(\w+)">(.*?)</tr>', scores, re.S))
    assert list(rows) == ["exact", "short"]  # below BLEU / ROUGE, in the order the request named them
    assert scores.index('data-metric="rouge_l"') < scores.index('data-grader="exact"')
    cells = {name: re.findall(r'<td data-label="(\w+)">(.*?)</td>', row, re.S) for name, row in rows.items()}
    assert [(label, text_of(cell)) for label, cell in cells["exact"]] == [("base", "0.500"), ("tuned", "1.000")]
    assert text_of(cells["short"][0][1]) == "0.125 1 could not be graded"
    assert re.search(r'class="better"[^>]*data-change="0.5" data-verdict="better"', rows["exact"])
    assert 'data-verdict="same"' in rows["short"] and "+0.000" in text_of(rows["short"])


def test_each_answer_shows_its_grades_and_why_a_grader_failed(client, report_id):
    html = client.get(f"/console/evaluations/{report_id}").text
    best = html[html.index('id="best-samples"'):html.index('id="worst-samples"')]
    first = best[:best.index('data-sample="1"')]  # sample 0: the fine-tune's best answer, beside the base's
    one_output = r'<div class="output[^"]*" data-label="(\w+)">(.*?)</div>\s*(?=<div class="output|</div>)'
    outputs = dict(re.findall(one_output, first, re.S))
    grades = {label: dict(re.findall(r'<li data-grader="(\w+)" data-score="([\d.]+)"', body))
              for label, body in outputs.items()}
    assert grades == {"base": {"exact": "0.0", "short": "0.0"}, "tuned": {"exact": "1.0", "short": "0.2"}}
    failed = re.search(r'<li data-grader="short"[^>]*data-failed="true">(.*?)</li>', outputs["base"], re.S)
    assert failed and "could not grade: ZeroDivisionError: division by zero" in text_of(failed.group(1))
    every = html[html.index('id="all-samples"'):]
    assert 'title="ZeroDivisionError: division by zero"' in every  # the table keeps the reason as a tooltip

    zh = client.get(f"/console/evaluations/{report_id}", headers={"Accept-Language": "zh-CN"}).text
    assert catalog("zh")["evaluations.grader"].format(name="exact") in zh
