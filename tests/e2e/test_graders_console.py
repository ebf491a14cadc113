"""Graders in the console, in Chromium: choose a type and the editor shows its example; Validate names the field at
fault; create the grader, try it on JSONL samples and read each score with its reason and the mean; delete it.
Screenshots under test-artifacts/screenshots/test_create_a_grader_and_try_it/."""

from __future__ import annotations

import json
import re

import pytest

pytestmark = pytest.mark.browser
EXACT = {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}", "reference": "{{item.answer}}",
         "operation": "equals"}  # a mistake the Validate button finds
SAMPLES = "\n".join(json.dumps({"sample": {"output_text": out}, "item": {"answer": answer}})
                    for out, answer in (("Paris", "Paris"), ("London", "Paris"), ("Rome", "Rome"), ("", "Rome")))


def test_create_a_grader_and_try_it(console_server, page, page_errors, shoot):
    page.goto("/console/tasks")
    page.locator("nav a[data-nav='graders']").click()
    page.wait_for_url("**/console/graders")
    assert page.locator("#grader-table .empty").is_visible()
    page.locator("[data-action='new-grader']").click()
    page.wait_for_url("**/console/graders/new")

    # Each type fills the editor with an example of it.
    assert json.loads(page.locator("#grader-json").input_value())["type"] == "string_check"
    page.locator("#grader-type").select_option("python")
    page.wait_for_function("document.querySelector('#grader-json').value.includes('def grade')")
    shoot("1-python-example")

    # Validate names the field at fault, and then says the grader is valid.
    page.locator("#grader-type").select_option("string_check")
    page.wait_for_function("JSON.parse(document.querySelector('#grader-json').value).type === 'string_check'")
    page.locator("#grader-name").fill("exact-answer")
    page.locator("#grader-json").fill(json.dumps(EXACT, indent=2))
    page.locator("[data-action='validate']").click()
    problem = page.locator("#grader-problems [data-error-field]")
    problem.wait_for()
    assert problem.get_attribute("data-error-field") == "grader.operation"
    shoot("2-validate-problem")
    page.locator("#grader-json").fill(json.dumps(EXACT | {"operation": "eq"}, indent=2))
    page.locator("[data-action='validate']").click()
    page.locator("#grader-problems [data-valid='true']").wait_for()

    page.locator("#grader-form button[type=submit]").click()
    page.wait_for_url(re.compile(r".*/console/graders/\d+$"))
    assert page.locator("h1").inner_text().startswith("exact-answer")
    assert json.loads(page.locator("#grader-detail pre#grader-json").inner_text())["operation"] == "eq"

    # Try it: a score for each line with the mean.
    page.locator("#grader-samples").fill(SAMPLES)
    page.locator("[data-action='run-grader']").click()
    rows = page.locator("#grader-scores tbody tr")
    rows.first.wait_for()
    scores = [(row.get_attribute("data-line"), row.locator("[data-score]").inner_text()) for row in rows.all()]
    assert scores == [("1", "1"), ("2", "0"), ("3", "1"), ("4", "0")]
    assert page.locator("#grader-mean").inner_text() == "0.5"
    shoot("3-scores")

    # A line that is not JSON is named, and nothing is scored.
    page.locator("#grader-samples").fill(SAMPLES + "\n{oops")
    page.locator("[data-action='run-grader']").click()
    page.locator("#grader-run [data-error-field='line 5']").wait_for()
    assert page.locator("#grader-scores").count() == 0

    # Delete (after the browser's confirmation) and land on the empty list.
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("[data-action='delete-grader']").click()
    page.wait_for_url("**/console/graders")
    page.locator("#grader-table .empty").wait_for()
    assert console_server.platform.graders.list().total == 0
    assert not page_errors, "\n".join(page_errors)
