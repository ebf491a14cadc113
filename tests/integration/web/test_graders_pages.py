"""The graders pages as the server renders them (TestClient, no browser): the list, the create form (the type's
example in the editor, Validate naming each field, a taken name shown in the form), a grader's page, and "try this
grader on these samples" giving each score with its reason and the mean; zh and en."""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any

import pytest

from tuneforge.graders.sandbox import sandbox_problem
from tuneforge.web.i18n import catalog

EXACT = {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}", "reference": "{{item.answer}}",
         "operation": "eq"}
SAMPLES = "\n".join(json.dumps(s) for s in (
    {"sample": {"output_text": "Paris"}, "item": {"answer": "Paris"}},
    {"sample": {"output_text": "London"}, "item": {"answer": "Paris"}},
    {"sample": {"output_text": "Paris"}, "item": {"answer": "Paris"}},
))


def text_of(html: str) -> str:
    """The page as a reader sees it: tags dropped, entities decoded, whitespace collapsed."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def textarea(html: str, name: str) -> str:
    match = re.search(rf'<textarea[^>]*name="{name}"[^>]*>(.*?)</textarea>', html, re.S)
    assert match, f"no textarea {name}"
    return unescape(match.group(1))


def score_rows(html: str) -> list[tuple[int, float, str]]:
    """(line, score, reason) of each row of the scores table."""
    rows = []
    for match in re.finditer(r'<tr data-line="(\d+)">(.*?)</tr>', html, re.S):
        cells = [text_of(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", match.group(2), re.S)]
        rows.append((int(match.group(1)), float(cells[2]), cells[3]))
    return rows


def create(client: Any, name: str, grader: dict[str, Any]) -> int:
    answer = client.post("/console/graders", data={"name": name, "type": grader["type"],
                                                   "grader": json.dumps(grader)}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return int(answer.headers["location"].rsplit("/", 1)[1])


def test_the_list_links_each_grader_and_filters_by_type(client):
    empty = client.get("/console/graders")
    assert empty.status_code == 200
    assert catalog("en")["graders.empty"] in text_of(empty.text)
    assert 'data-nav="graders"' in empty.text and 'aria-current="page"' in empty.text
    first = create(client, "exact-answer", EXACT)
    create(client, "close-answer", {"type": "text_similarity", "name": "close", "input": "{{sample.output_text}}",
                                    "reference": "{{item.answer}}", "evaluation_metric": "fuzzy_match"})
    page = client.get("/console/graders").text
    assert re.findall(r'data-grader-name="([^"]+)"', page) == ["close-answer", "exact-answer"]
    assert f'href="/console/graders/{first}"' in page
    only = client.get("/console/graders", params={"type": "string_check"}).text
    assert re.findall(r'data-grader-name="([^"]+)"', only) == ["exact-answer"]


def test_the_form_fills_the_editor_with_an_example_of_the_chosen_type(client):
    form = client.get("/console/graders/new")
    assert form.status_code == 200
    assert json.loads(textarea(form.text, "grader"))["type"] == "string_check"
    python = client.get("/console/graders/example", params={"type": "python"})
    example = json.loads(textarea(python.text, "grader"))
    assert example["type"] == "python" and "def grade(sample, item)" in example["source"]
    for kind in ("string_check", "text_similarity", "python", "score_model", "label_model", "multi"):
        shown = json.loads(textarea(client.get("/console/graders/example", params={"type": kind}).text, "grader"))
        verdict = client.post("/graders/validateGrader", json={"grader": shown}).json()
        assert verdict["type"] == kind and (verdict["valid"] or kind == "python"), verdict  # every example is valid


def test_validate_names_each_problem_or_says_it_is_valid(client):
    bad = client.post("/console/graders/validate", data={"grader": json.dumps(EXACT | {"operation": "equals"})})
    assert bad.status_code == 200
    assert re.findall(r'data-error-field="([^"]*)"', bad.text) == ["grader.operation"]
    broken = client.post("/console/graders/validate", data={"grader": '{"type": "string_check",'})
    assert "not valid JSON" in text_of(broken.text)
    good = client.post("/console/graders/validate", data={"grader": json.dumps(EXACT)})
    assert 'data-valid="true"' in good.text and "A valid string_check grader." in text_of(good.text)


def test_create_refusals_stay_in_the_form_with_what_was_typed(client):
    create(client, "exact", EXACT)
    typed = json.dumps(EXACT, indent=2)
    taken = client.post("/console/graders", data={"name": "exact", "type": "string_check", "grader": typed,
                                                  "description": "mine"})
    assert taken.status_code == 409
    assert re.findall(r'data-error-field="([^"]*)"', taken.text) == ["name"]
    assert textarea(taken.text, "grader") == typed and 'value="mine"' in taken.text
    bad = client.post("/console/graders", data={"name": "other", "type": "string_check",
                                                "grader": json.dumps({"type": "string_check", "name": "x"})})
    assert bad.status_code == 422
    assert {"grader.input", "grader.reference", "grader.operation"} <= set(
        re.findall(r'data-error-field="([^"]*)"', bad.text))


def test_trying_a_grader_shows_each_score_and_the_mean(client):
    grader_id = create(client, "exact", EXACT)
    page = client.get(f"/console/graders/{grader_id}")
    assert page.status_code == 200
    assert json.loads(unescape(re.search(r'<pre[^>]*id="grader-json"[^>]*>(.*?)</pre>', page.text, re.S)
                               .group(1))) == EXACT
    assert textarea(page.text, "samples").count('"sample"') == 3  # an example to start from
    run = client.post(f"/console/graders/{grader_id}/run", data={"samples": SAMPLES + "\n\n"})
    assert run.status_code == 200
    assert score_rows(run.text) == [(1, 1.0, "—"), (2, 0.0, "—"), (3, 1.0, "—")]
    assert re.search(r'id="grader-mean" data-mean="([^"]+)"', run.text).group(1).startswith("0.666")
    bad = client.post(f"/console/graders/{grader_id}/run", data={"samples": SAMPLES + "\n{oops\n" + '{"item": {}}'})
    assert re.findall(r'data-error-field="([^"]*)"', bad.text) == ["line 4"]
    missing = client.post(f"/console/graders/{grader_id}/run", data={"samples": SAMPLES + "\n\n" + '{"item": {}}'})
    assert re.findall(r'data-error-field="([^"]*)"', missing.text) == ["line 5 sample"]


@pytest.mark.skipif(sandbox_problem() is not None, reason=f"python graders: {sandbox_problem()}")
def test_a_python_grader_failing_on_a_sample_shows_the_reason(client):
    source = "def grade(sample, item):\n    return 1.0 / len(sample['output_text'])\n"
    grader_id = create(client, "inverse-length", {"type": "python", "name": "inverse", "source": source})
    samples = "\n".join(json.dumps({"sample": {"output_text": text}, "item": {}}) for text in ("ab", "", "abcd"))
    rows = score_rows(client.post(f"/console/graders/{grader_id}/run", data={"samples": samples}).text)
    assert [(line, score) for line, score, _ in rows] == [(1, 0.5), (2, 0.0), (3, 0.25)]
    assert "ZeroDivisionError" in rows[1][2]


def test_the_pages_speak_chinese_and_a_missing_grader_is_a_404_page(client):
    grader_id = create(client, "exact", EXACT)
    client.cookies.set("lang", "zh")
    zh = catalog("zh")
    assert zh["graders.title"] in text_of(client.get("/console/graders").text)
    assert zh["graders.try_title"] in text_of(client.get(f"/console/graders/{grader_id}").text)
    missing = client.get("/console/graders/999")
    assert missing.status_code == 404 and zh["graders.not_found"].format(id=999) in text_of(missing.text)


def test_delete_goes_back_to_the_list(client):
    grader_id = create(client, "exact", EXACT)
    gone = client.post(f"/console/graders/{grader_id}/delete", follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"] == "/console/graders"
    htmx = client.post(f"/console/graders/{grader_id}/delete", headers={"HX-Request": "true"})
    assert htmx.headers["HX-Redirect"] == "/console/graders"
    assert client.get("/graders/getGraderList").json()["total"] == 0
