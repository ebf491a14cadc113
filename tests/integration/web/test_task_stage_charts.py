"""The task page shows what a preference or RL stage reports: one small chart per figure its stage declares (titled in
the page's language, hidden until the task has points for it) and, for GRPO / PPO, the completions sampled at a
chosen step with their reward and each grader's score and reason, following the latest step while the task runs."""

from __future__ import annotations

import json
import re
import time
from html import unescape
from typing import Any

import pytest

from tuneforge.schemas.stages import STAGES
from tuneforge.service.platform import Platform
from tuneforge.store import Task
from tuneforge.web.i18n import catalog
from tuneforge.web.pages.tasks import BASE_SERIES, stage_charts


def add_task(platform: Platform, stage: str, status: str = "running", completions: list[Any] | None = None) -> int:
    run_dir = platform.settings.runs_path / f"{stage}-{status}"
    run_dir.mkdir(parents=True)
    if completions is not None:
        (run_dir / "completions.jsonl").write_text("".join(json.dumps(c) + "\n" for c in completions))
    with platform.db.session() as session:
        task = Task(name=f"{stage}-{status}", base_model="bundled", dataset="prompts", output_path=str(run_dir / "o"),
                    stage=stage, finetuning_type="lora", training_args={"stage": stage}, status=status,
                    run_dir=str(run_dir), log_path=str(run_dir / "train.log"), metrics={}, created_at=time.time())
        session.add(task)
        session.flush()
        return task.id


def chart_panels(html: str) -> dict[str, str]:
    """metric name → the panel's HTML."""
    return {m.group(1): m.group(0) for m in
            re.finditer(r'<div class="panel" data-stage-metric="([^"]+)" hidden>.*?</div>\s*</div>', html, re.S)}


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def samples_section(html: str) -> str:
    match = re.search(r'<section id="task-samples".*?</section>', html, re.S)
    assert match, "no samples section"
    return match.group(0)


COMPLETIONS = [
    {"step": 1, "prompt": "What is 2 + 2? Answer with the number only.", "completion": "5", "reward": 0.0,
     "scores": {"exact_answer": 0.0}, "reasons": {"exact_answer": "expected 4, got 5"}},
    {"step": 2, "prompt": "What is 3 + 4? Answer with the number only.", "completion": "7", "reward": 1.0,
     "scores": {"exact_answer": 1.0, "answer_in_text": 1.0}, "reasons": {}},
    {"step": 2, "prompt": "Uppercase the word: tree", "completion": "<script>alert(1)</script> TREE", "reward": 0.5,
     "scores": {"exact_answer": 0.0, "answer_in_text": 1.0}, "reasons": {"exact_answer": "not equal"}},
]


@pytest.mark.parametrize("stage", ["dpo", "grpo"])
def test_one_hidden_chart_per_declared_figure_titled_in_the_page_language(client, platform, stage):
    task_id = add_task(platform, stage)
    declared = [name for name in STAGES[stage].metrics if name not in BASE_SERIES]
    page = client.get(f"/console/tasks/{task_id}")
    panels = chart_panels(page.text)
    assert list(panels) == declared == stage_charts(stage)
    for name, panel in panels.items():
        assert catalog("en")[f"metric.{name}"] in unescape(panel) and f"<code class=\"muted\">{name}</code>" in panel
    client.cookies.set("lang", "zh")
    zh = chart_panels(client.get(f"/console/tasks/{task_id}").text)
    assert all(catalog("zh")[f"metric.{name}"] in unescape(panel) for name, panel in zh.items())
    assert 'src="/console/static/task_detail.js' in page.text


def test_every_figure_of_the_stage_table_has_a_title_in_both_languages():
    figures = {name for stage in STAGES.values() for name in stage.metrics if name not in BASE_SERIES}
    assert {"rewards/margins", "kl", "reward", "completions/mean_length"} <= figures
    for lang in ("en", "zh"):
        assert sorted(f for f in figures if f"metric.{f}" not in catalog(lang)) == [], lang


def test_sft_charts_only_what_the_loss_chart_lacks_and_shows_no_samples(client, platform):
    page = client.get(f"/console/tasks/{add_task(platform, 'sft')}").text
    assert list(chart_panels(page)) == ["perplexity"] and 'id="task-samples"' not in page
    assert 'id="task-samples"' not in client.get(f"/console/tasks/{add_task(platform, 'dpo')}").text


def test_grpo_shows_the_latest_steps_samples_with_scores_and_follows_while_running(client, platform):
    task_id = add_task(platform, "grpo", completions=COMPLETIONS)
    section = samples_section(client.get(f"/console/tasks/{task_id}").text)
    assert " hidden" not in section.split(">", 1)[0]
    assert f'hx-get="/console/tasks/{task_id}/samples" hx-trigger="every 5s"' in section  # follows the latest
    assert re.findall(r'<option value="(\d*)"', section) == ["", "2", "1"]
    assert [m for m in re.findall(r'<article class="panel sample" data-step="(\d+)"', section)] == ["2", "2"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt; TREE" in section and "<script>alert" not in section
    rows = dict(re.findall(r'<tr data-grader="([^"]+)">(.*?)</tr>', section, re.S))
    assert text_of(rows["exact_answer"]) == "exact_answer 0 not equal"
    assert "Step 2: 2 of 2 samples shown" in text_of(section)


def test_a_chosen_step_stays_put_and_latest_follows_again(client, platform):
    task_id = add_task(platform, "grpo", completions=COMPLETIONS)
    step_one = client.get(f"/console/tasks/{task_id}/samples", params={"step": "1"})
    assert step_one.status_code == 200 and "hx-trigger" not in step_one.text.split(">", 1)[0]
    assert re.search(r'<option value="1" selected>', step_one.text)
    assert "expected 4, got 5" in unescape(step_one.text) and 'data-step="2"' not in step_one.text
    latest = client.get(f"/console/tasks/{task_id}/samples", params={"step": ""})
    assert 'hx-trigger="every 5s"' in latest.text and re.search(r'<option value="" selected>', latest.text)
    for nonsense in ("last", "-1", "1.5", "²"):  # not a step: the latest
        shown = client.get(f"/console/tasks/{task_id}/samples", params={"step": nonsense})
        assert shown.status_code == 200 and 'data-step="2"' in shown.text, nonsense
    gone = client.get("/console/tasks/999/samples")
    assert gone.status_code == 286 and " hidden" in gone.text and "hx-trigger" not in gone.text


def test_no_samples_yet_hides_the_panel_and_an_ended_task_stops_polling(client, platform):
    waiting = samples_section(client.get(f"/console/tasks/{add_task(platform, 'grpo')}").text)
    assert " hidden" in waiting.split(">", 1)[0] and "hx-trigger" in waiting and "<article" not in waiting
    done = add_task(platform, "ppo", status="completed", completions=COMPLETIONS)
    finished = samples_section(client.get(f"/console/tasks/{done}").text)
    assert "hx-trigger" not in finished.split(">", 1)[0] and finished.count("<article") == 2
    client.cookies.set("lang", "zh")
    assert catalog("zh")["task.samples"] in client.get(f"/console/tasks/{done}").text
