"""Datasets in the console, in Chromium: upload files with a field mapping, see a bad upload's problems by
file:line: field, see a good one's length histogram and its preview through a template with the trained tokens
highlighted; a wrong name is shown at its field and creates nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser
QA = [{"q": f"Who are you, number {i}?", "a": f"I am Forge, answer {i}."} for i in range(6)]
# One short answer, so the histogram has more than one bin.
QA.append({"q": "Say hi.", "a": "Hi."})


def write_train(folder: Path, extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "train.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in QA) + "\n" + extra, encoding="utf-8")
    return path


def fill_create_form(page, name: str, train: Path) -> None:
    page.goto("/console/datasets")
    page.locator("[data-action='create-dataset']").click()
    page.wait_for_url("**/console/datasets/new")
    page.locator("#ds-name").fill(name)
    page.locator("#ds-files").set_input_files(str(train))
    # The first record's fields are offered for the mapping once the file is chosen.
    page.locator("#ds-record-fields code").filter(has_text="q, a").wait_for()
    page.locator("#ds-col-alpaca-prompt").fill("q")
    page.locator("#ds-col-alpaca-response").fill("a")


def test_a_bad_upload_shows_its_problems_by_line(console_server, page, page_errors, shoot, tmp_path):
    train = write_train(tmp_path / "bad", extra='{"q": "Who?", "a": ""}\n{"q": oops}\n')
    fill_create_form(page, "Bad Name", train)
    page.locator("#ds-submit").click()
    # A wrong name is refused at its field, and nothing is created.
    name_error = page.locator("[data-field='name'] .field-error")
    name_error.wait_for()
    assert "lowercase" in name_error.inner_text()
    assert page.url.endswith("/console/datasets/new")
    shoot("name-error")
    assert console_server.platform.datasets.list()["total"] == 0

    page.locator("#ds-name").fill("qa-bad")
    page.locator("#ds-submit").click()
    page.wait_for_url(re.compile(r".*/console/datasets/\d+$"))
    # The report arrives by itself once validation ends (the page polls while it runs).
    problems = page.locator("#problem-list li.problem")
    problems.first.wait_for()
    lines = [re.sub(r"\s+", " ", text).strip() for text in problems.all_inner_texts()]
    assert len(lines) == 2
    assert lines[0].startswith("train.jsonl:8: a: empty response")
    assert lines[1].startswith("train.jsonl:9: invalid JSON")
    assert page.locator("#validation-report .badge").first.inner_text() == "invalid"
    assert page.locator("#problem-count").inner_text() == "2"
    shoot("problems-by-line")

    # The fix: the same files without the bad lines, uploaded as version 2, which is valid.
    page.locator("[data-action='toggle-version-form']").click()
    page.locator("#version-form input[type='file']").set_input_files(str(write_train(tmp_path / "fixed")))
    page.locator("#version-form button[type='submit']").click()
    page.wait_for_url("**?version=2")
    page.locator("#no-problems").wait_for()
    assert [r.get_attribute("data-version") for r in page.locator("#version-table tbody tr").all()] == ["2", "1"]

    # Back in the list, the dataset shows its latest version and status; delete asks first, then removes it.
    page.locator("nav a[data-nav='datasets']").click()
    row = page.locator("tr[data-dataset-name='qa-bad']")
    assert "qa-bad@v2" in row.inner_text() and "valid" in row.inner_text()
    shoot("list")
    row.locator("[data-action='delete-dataset']").click()
    dialog = page.locator("#confirm-dialog")
    assert "qa-bad" in dialog.locator(".dialog-title").inner_text()
    shoot("delete-confirm")
    dialog.locator(".dialog-confirm").click()
    row.wait_for(state="detached")
    assert console_server.platform.datasets.list()["total"] == 0
    # Chromium logs every 4xx answer; the refused name above is the one expected.
    unexpected = [e for e in page_errors if not ("status of 422" in e and "/datasets/createDataset" in e)]
    assert len(unexpected) == len(page_errors) - 1, "\n".join(page_errors)
    assert not unexpected, "\n".join(unexpected)


def test_a_good_upload_shows_the_histogram_and_the_trained_tokens(console_server, page, page_errors, shoot,
                                                                  tmp_path):
    fill_create_form(page, "qa-good", write_train(tmp_path / "good"))
    page.locator("#ds-submit").click()
    page.wait_for_url(re.compile(r".*/console/datasets/\d+$"))
    page.locator("#no-problems").wait_for()

    bars = page.locator("#dataset-stats .histogram .bar")
    counts = [int(n) for n in bars.evaluate_all("bars => bars.map(b => b.dataset.count)")]
    assert sum(counts) == len(QA) and len(counts) > 1
    heights = bars.evaluate_all("bars => bars.map(b => b.getBoundingClientRect().height)")
    tallest = counts.index(max(counts))
    # What a user sees: the fullest bin is the tallest bar, and an empty bin has (almost) no bar.
    assert heights[tallest] == max(heights) and heights[tallest] > 100
    assert all(h <= 2 for h, c in zip(heights, counts, strict=True) if c == 0)

    form = page.locator("#preview-form")
    form.locator("select[name='template']").select_option("chatml")
    form.locator("input[name='model']").fill(str(console_server.model_dir))
    form.locator("button[type='submit']").click()
    first = page.locator("#dataset-preview article.sample").first
    first.wait_for()
    assert first.get_attribute("data-origin") == "train.jsonl:1"
    trained = "".join(first.locator(".seg.trained").all_inner_texts())
    masked = "".join(first.locator(".seg.masked").all_inner_texts())
    assert "I am Forge, answer 0." in trained and "Who are you" not in trained
    assert "Who are you, number 0?" in masked
    # Highlighted means a different look, not only a class name.
    look = "el => getComputedStyle(el).backgroundColor"
    assert first.locator(".seg.trained").first.evaluate(look) != first.locator(".seg.masked").first.evaluate(look)
    first.scroll_into_view_if_needed()
    shoot("histogram-and-preview")

    page.locator(".lang-switch a[data-lang='zh']").click()
    page.locator("#no-problems").wait_for()
    assert page.locator("#stats-panel h2").inner_text() == "统计"
    shoot("chinese")
    assert not page_errors, "\n".join(page_errors)
