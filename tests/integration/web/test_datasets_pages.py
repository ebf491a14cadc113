"""The datasets pages as the server renders them (TestClient, no browser): the list with versions, status and rows;
the validation report by line; statistics with the length histogram; the preview with trained tokens marked; the
polling that stops once validation ends; errors shown in the page, never a server error; zh and en."""

from __future__ import annotations

import json
import re
import threading
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tuneforge.service.platform import Platform
from tuneforge.web.i18n import catalog

QA = [{"q": f"Who are you, number {i}?", "a": f"I am Forge, answer {i}."} for i in range(6)]
COLUMNS = {"prompt": "q", "response": "a"}
TEMPLATES = Path(__file__).resolve().parents[3] / "src" / "tuneforge" / "web" / "templates" / "datasets"


def jsonl(rows: list[dict[str, Any]], extra: str = "") -> bytes:
    return ("\n".join(json.dumps(r) for r in rows) + "\n" + extra).encode()




def create(client: TestClient, platform: Platform, name: str, content: bytes, wait: bool = True,
           **form: str) -> dict[str, Any]:
    data = {"name": name, "columns": json.dumps(COLUMNS), **form}
    response = client.post("/datasets/createDataset", data=data, files=[("files", ("train.jsonl", content))])
    assert response.status_code == 201, response.text
    if wait:
        platform.datasets.wait_for_jobs()
    return response.json()


def text_of(html: str) -> str:
    """The page as a reader sees it: tags dropped, entities decoded, whitespace collapsed."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def test_the_list_shows_each_dataset_with_its_version_status_rows_and_format(client, platform):
    create(client, platform, "qa-good", jsonl(QA))
    create(client, platform, "qa-bad", jsonl(QA, extra="{oops\n"))
    page = client.get("/console/datasets")
    assert page.status_code == 200
    rows = {m.group(1): text_of(m.group(2)) for m in
            re.finditer(r'<tr data-dataset-id="\d+" data-dataset-name="([^"]+)">(.*?)</tr>', page.text, re.S)}
    assert set(rows) == {"qa-good", "qa-bad"}
    assert "qa-good@v1" in rows["qa-good"] and "valid" in rows["qa-good"] and "train 6" in rows["qa-good"]
    assert "alpaca · sft" in rows["qa-good"]
    assert "invalid" in rows["qa-bad"]
    assert "Datasets: 2" in text_of(page.text)
    # Nothing validates any more: the table does not poll.
    assert "every 2s" not in page.text

    searched = client.get("/console/datasets", params={"q": "bad"})
    assert 'data-dataset-name="qa-bad"' in searched.text and 'data-dataset-name="qa-good"' not in searched.text
    assert catalog("en")["datasets.empty_search"] in client.get("/console/datasets", params={"q": "zzz"}).text


def test_an_invalid_version_lists_its_problems_by_file_line_and_field(client, platform):
    bad = jsonl(QA, extra='{"q": "Who?", "a": ""}\n{"q": oops}\n')
    dataset = create(client, platform, "qa-bad", bad)
    page = client.get(f"/console/datasets/{dataset['id']}")
    assert page.status_code == 200
    problems = [text_of(item) for item in re.findall(r'<li class="problem".*?</li>', page.text, re.S)]
    assert len(problems) == 2
    assert problems[0].startswith("train.jsonl:7: a: empty response")
    assert problems[1].startswith("train.jsonl:8: invalid JSON")
    report = text_of(page.text)
    assert "Validation report of qa-bad@v1" in report and "Valid rows 6" in report
    assert catalog("en")["datasets.invalid_hint"] in report
    # Statistics need a valid version; the preview skips the bad lines and says so.
    assert 'id="stats-panel"' not in page.text and 'id="preview-panel"' in page.text


def test_a_valid_version_shows_statistics_with_a_histogram_and_no_problem(client, platform):
    dataset = create(client, platform, "qa-good", jsonl(QA))
    page = client.get(f"/console/datasets/{dataset['id']}")
    assert catalog("en")["datasets.no_problems"] in page.text
    stats = client.get("/datasets/getDatasetStats", params={"id": dataset["id"]}).json()
    counts = stats["overall"]["histogram"]["counts"]
    bars = [int(n) for n in re.findall(r'<span class="bar" data-count="(\d+)"', page.text)]
    assert bars == counts and sum(bars) == len(QA)
    # The tallest bin fills the chart; every bar's height is its share of the tallest.
    heights = [float(h) for h in re.findall(r'data-count="\d+" style="height: ([\d.]+)%"', page.text)]
    assert max(heights) == 100.0 and len(heights) == len(counts)


def test_statistics_recounted_with_a_model_tokenizer_and_cutoff(client, platform, tiny_model_dir):
    dataset = create(client, platform, "qa-good", jsonl(QA))
    fragment = client.get(f"/console/datasets/{dataset['id']}/stats",
                          params={"model": str(tiny_model_dir), "cutoffLen": "8"})
    assert fragment.status_code == 200
    shown = text_of(fragment.text)
    assert "tokenizer:" in shown and "cutoff_len 8" in shown
    over = re.search(r"Longer than cutoff_len (\d+)", shown)
    assert over and int(over.group(1)) == len(QA)  # every sample is longer than 8 tokens

    bad = client.get(f"/console/datasets/{dataset['id']}/stats", params={"cutoffLen": "zero"})
    assert bad.status_code == 200 and 'data-field="cutoffLen"' in bad.text
    missing = client.get(f"/console/datasets/{dataset['id']}/stats", params={"model": str(tiny_model_dir / "nope")})
    assert 'data-field="model"' in missing.text


def test_the_preview_marks_the_trained_answer_and_masks_the_prompt(client, platform, tiny_model_dir):
    dataset = create(client, platform, "qa-good", jsonl(QA))
    fragment = client.get(f"/console/datasets/{dataset['id']}/preview",
                          params={"template": "chatml", "model": str(tiny_model_dir), "n": "2"})
    assert fragment.status_code == 200
    samples = re.findall(r'<article class="sample" data-origin="([^"]+)">(.*?)</article>', fragment.text, re.S)
    assert [origin for origin, _ in samples] == ["train.jsonl:1", "train.jsonl:2"]
    body = samples[0][1]
    trained = "".join(unescape(t) for t in re.findall(r'<span class="seg trained"[^>]*>(.*?)</span>', body, re.S))
    masked = "".join(unescape(t) for t in re.findall(r'<span class="seg masked"[^>]*>(.*?)</span>', body, re.S))
    assert "I am Forge, answer 0." in trained and "Who are you" not in trained
    assert "Who are you, number 0?" in masked and "<|im_start|>" in masked
    assert "template chatml" in text_of(fragment.text)


PAIRS = [{"instruction": f"Greet visitor {i}.", "input": "", "chosen": f"Hello, visitor {i}! How can I help?",
          "rejected": f"What do you want, {i}?"} for i in range(4)]
KTO = [{"messages": [{"role": "user", "content": f"Thank guest {i}."},
                     {"role": "assistant", "content": "Thank you for coming!" if i % 2 == 0 else "Whatever."}],
        "kto_tag": i % 2 == 0} for i in range(4)]


def preview_samples(client: TestClient, dataset_id: int, model: Path) -> list[tuple[str, str]]:
    fragment = client.get(f"/console/datasets/{dataset_id}/preview",
                          params={"template": "chatml", "model": str(model), "n": "2"})
    assert fragment.status_code == 200
    return re.findall(r'<article class="sample" data-origin="([^"]+)">(.*?)</article>', fragment.text, re.S)


def trained_text(html: str) -> str:
    return "".join(unescape(t) for t in re.findall(r'<span class="seg trained"[^>]*>(.*?)</span>', html, re.S))


def test_a_preference_pair_shows_its_prompt_once_and_both_answers_side_by_side(client, platform, tiny_model_dir):
    dataset = create(client, platform, "pairs", jsonl(PAIRS), purpose="preference", columns="{}")
    samples = preview_samples(client, dataset["id"], tiny_model_dir)
    assert [origin for origin, _ in samples] == ["train.jsonl:1", "train.jsonl:2"]
    body = samples[0][1]
    assert unescape(body).count("Greet visitor 0.") == 1  # the prompt, once
    prompt = re.search(r'<pre class="rendered" data-part="prompt">(.*?)</pre>', body, re.S).group(1)
    assert "Greet visitor 0." in unescape(prompt) and 'class="seg trained"' not in prompt
    sides = dict(re.findall(r'<div class="answer" data-side="(\w+)">(.*?)</div>', body, re.S))
    assert list(sides) == ["chosen", "rejected"]
    assert "Hello, visitor 0! How can I help?" in trained_text(sides["chosen"]) and "Chosen" in text_of(sides["chosen"])
    assert "What do you want, 0?" in trained_text(sides["rejected"]) and "Rejected" in text_of(sides["rejected"])
    assert 'data-kind="preference"' in body
    client.cookies.set("lang", "zh")
    zh = preview_samples(client, dataset["id"], tiny_model_dir)[0][1]
    assert catalog("zh")["datasets.preview_chosen"] in zh and catalog("zh")["datasets.preview_rejected"] in zh


def test_a_kto_sample_shows_whether_its_answer_is_desirable(client, platform, tiny_model_dir):
    dataset = create(client, platform, "thanks", jsonl(KTO), purpose="kto", columns="{}")
    samples = preview_samples(client, dataset["id"], tiny_model_dir)
    labels = [re.search(r'data-label="(\w+)">([^<]+)<', body).groups() for _, body in samples]
    assert labels == [("desirable", "desirable"), ("undesirable", "undesirable")]
    assert "Whatever." in trained_text(samples[1][1]) and 'data-side=' not in samples[1][1]


PROMPTS = [{"messages": [{"role": "user", "content": f"What is {i} + {i}? Answer with the number only."}],
            "answer": str(2 * i), "kind": "sum"} for i in range(3)]


def test_a_prompt_shows_where_sampling_starts_and_the_row_graders_read(client, platform, tiny_model_dir):
    dataset = create(client, platform, "sums", jsonl(PROMPTS), purpose="prompt", columns="{}")
    samples = preview_samples(client, dataset["id"], tiny_model_dir)
    assert [origin for origin, _ in samples] == ["train.jsonl:1", "train.jsonl:2"]
    body = samples[1][1]
    assert 'data-kind="prompt"' in body and 'class="seg trained"' not in body  # the answers are sampled, not given
    prompt = re.search(r'<pre class="rendered" data-part="prompt">(.*?)</pre>', body, re.S).group(1)
    assert unescape(re.sub(r"<[^>]+>", "", prompt)) == ("<|im_start|>user\nWhat is 1 + 1? Answer with the number only."
                                              "<|im_end|>\n<|im_start|>assistant\n")
    item = re.search(r'<table class="table compact" data-part="item">(.*?)</table>', body, re.S).group(1)
    fields = {key: text_of(value) for key, value in
              re.findall(r'<tr data-field="(\w+)"><th>.*?</th>\s*<td>(.*?)</td></tr>', item, re.S)}
    assert fields["answer"] == "2" and fields["kind"] == "sum"
    assert json.loads(fields["messages"]) == PROMPTS[1]["messages"]
    assert "item.answer" in text_of(item) and "sampled" in text_of(body)
    client.cookies.set("lang", "zh")
    zh = preview_samples(client, dataset["id"], tiny_model_dir)[0][1]
    assert catalog("zh")["datasets.preview_item"] in unescape(zh)


@pytest.mark.parametrize(("params", "field"), [
    ({"template": "no-such-template"}, "template"),
    ({"n": "0"}, "n"),
    ({"n": "51"}, "n"),
    ({"cutoffLen": "-3"}, "cutoffLen"),
])
def test_a_bad_preview_option_is_named_in_the_page_not_a_server_error(client, platform, tiny_model_dir, params,
                                                                       field):
    dataset = create(client, platform, "qa-good", jsonl(QA))
    fragment = client.get(f"/console/datasets/{dataset['id']}/preview",
                          params={"template": "chatml", "model": str(tiny_model_dir), **params})
    assert fragment.status_code == 200
    assert re.search(rf'class="error-text field-problem" role="alert" data-field="{field}"', fragment.text)
    assert "<article" not in fragment.text


def test_a_validating_version_polls_until_its_report_is_ready(client, platform):
    gate = threading.Event()
    platform.datasets.jobs.submit(gate.wait)  # the one validation worker is busy: the new version stays validating
    try:
        dataset = create(client, platform, "qa-slow", jsonl(QA), wait=False)
        page = client.get(f"/console/datasets/{dataset['id']}")
        assert 'data-status="validating"' in page.text
        poll = re.search(r'hx-get="([^"]+/version\?version=1)" hx-trigger="every 2s"', page.text)
        assert poll, "a validating version refreshes itself every 2 s"
        assert 'hx-trigger="refresh, every 2s"' in client.get("/console/datasets").text
    finally:
        gate.set()
    platform.datasets.wait_for_jobs()
    fragment = client.get(poll.group(1).replace("&amp;", "&"))
    assert 'data-status="valid"' in fragment.text and "hx-trigger" not in fragment.text.split(">", 1)[0]
    assert catalog("en")["datasets.no_problems"] in fragment.text


def test_versions_are_listed_newest_first_and_each_can_be_opened(client, platform):
    dataset = create(client, platform, "qa", jsonl(QA, extra="{oops\n"))
    response = client.post("/datasets/createDatasetVersion", data={"id": dataset["id"]},
                           files=[("files", ("train.jsonl", jsonl(QA)))])
    assert response.status_code == 201
    platform.datasets.wait_for_jobs()
    latest = client.get(f"/console/datasets/{dataset['id']}")
    assert re.findall(r'<tr data-version="(\d+)"', latest.text) == ["2", "1"]
    assert "Validation report of qa@v2" in text_of(latest.text)
    first = client.get(f"/console/datasets/{dataset['id']}", params={"version": 1})
    assert "Validation report of qa@v1" in text_of(first.text) and 'class="problem"' in first.text
    assert client.get(f"/console/datasets/{dataset['id']}", params={"version": 9}).status_code == 404
    assert client.get("/console/datasets/999").status_code == 404


def test_the_create_form_offers_the_llamafactory_mapping_of_each_format(client):
    page = client.get("/console/datasets/new")
    assert page.status_code == 200
    # Alpaca's columns with their default field names as placeholders; ShareGPT's tags; each formatting option.
    assert re.search(r'data-column="prompt" placeholder="instruction"', page.text)
    assert re.search(r'data-column="response" placeholder="output"', page.text)
    assert re.search(r'data-column="messages" placeholder="conversations"', page.text)
    assert re.search(r'data-tag="role_tag" placeholder="from"', page.text)
    assert all(f'<option value="{name}">' in page.text for name in ("alpaca", "sharegpt", "sft", "preference"))


def test_the_pages_speak_chinese(client, platform):
    dataset = create(client, platform, "qa-bad", jsonl(QA, extra="{oops\n"))
    client.cookies.set("lang", "zh")
    zh = catalog("zh")
    listing = client.get("/console/datasets").text
    assert zh["datasets.title"] in listing and zh["datasets.status_invalid"] in listing
    detail = client.get(f"/console/datasets/{dataset['id']}").text
    assert zh["datasets.report_title"].format(reference="qa-bad@v1") in detail
    assert zh["datasets.problems_by_line"] in detail and zh["datasets.invalid_hint"] in detail
    assert zh["datasets.section_mapping"] in client.get("/console/datasets/new").text


def test_every_datasets_string_exists_in_english_and_chinese():
    used = set()
    for path in [*TEMPLATES.glob("*.html"), TEMPLATES.parents[1] / "static" / "datasets.js"]:
        used |= set(re.findall(r"""\bt\(\s*['"]((?:js\.)?datasets\.[a-z0-9_.]+)['"]""", path.read_text()))
    assert len(used) > 100
    for lang in ("en", "zh"):
        missing = sorted(used - set(catalog(lang)))
        assert not missing, f"{lang}.json lacks {missing}"
