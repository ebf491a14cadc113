"""The tasks console in a real browser (issue 7's bars): create a task with the tiny model through the guided form
and watch it complete with points on the loss chart, the detail view updating at least every 2 s without a reload
and showing the whole chart and log when reopened; a wrong field shows its error there and creates nothing; stop,
copy, delete and publish from the pages; the language switch."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import ConsoleServer
from tests.e2e.log_gate import LogGate
from tests.fixtures.auth import api_get, api_post
from tests.fixtures.polling import until
from tuneforge.web.i18n import catalog

pytestmark = pytest.mark.browser
TRAINING = {"template": "chatml", "cutoff_len": 64, "per_device_train_batch_size": 4, "learning_rate": 5e-3,
            "logging_steps": 1, "save_steps": 10, "lora_rank": 8, "report_to": "none", "seed": 7}


@pytest.fixture()
def first_task_gate(console_server: ConsoleServer) -> Iterator[LogGate]:
    """Holds the server's first task (run directory task-1) at its first logged step until the test releases it."""
    gate = LogGate(console_server.settings.runs_path / "task-1")
    yield gate
    gate.release()  # a failed test leaves no worker waiting on the gate
    gate.close()


def create_task(server: ConsoleServer, name: str, **args: Any) -> dict[str, Any]:
    body = {"name": name, "baseModel": str(server.model_dir), "datasetPath": str(server.dataset_dir),
            "trainingArgs": {**TRAINING, "max_steps": 20, **args}}
    answer = api_post(f"{server.url}/finetuning/createTask", json=body, timeout=120)
    assert answer.status_code == 201, answer.text
    return answer.json()


def wait_for(server: ConsoleServer, task_id: int, statuses: set[str], timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    task: dict[str, Any] = {}
    while time.monotonic() < deadline:
        task = api_get(f"{server.url}/finetuning/getTask", params={"id": task_id}).json()
        if task["status"] in statuses:
            return task
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} stayed {task.get('status')}: {task.get('errorMessage')}")


def step_shown(page) -> str:
    return page.locator("[data-fact='step']").inner_text().strip()


def wait_for_step(page, text: str, timeout_ms: int) -> None:
    page.wait_for_function("(text) => document.querySelector('[data-fact=step]').textContent.trim() === text",
                           arg=text, timeout=timeout_ms)


def real_errors(errors: list[str]) -> list[str]:
    """JavaScript errors, without the browser's note on an expected 4xx answer (a refused form)."""
    return [e for e in errors if not re.search(r"Failed to load resource: .* (404|409|422)", e)]


def open_section(page, step: str) -> None:
    page.locator(f"[data-goto='{step}']").click()


def test_create_through_the_form_and_watch_it_complete(console_server, first_task_gate, page, page_errors, shoot):
    page.goto("/console/tasks")
    page.locator("[data-action='create']").click()
    page.fill("#f-name", "form-run-1")
    page.fill("#f-baseModel", str(console_server.model_dir))
    page.select_option("#f-template", '"chatml"')
    shoot("1-model")
    page.locator("[data-nav='next']").click()
    page.fill("#f-datasetPath", str(console_server.dataset_dir))
    page.fill("#f-cutoff_len", "64")
    page.locator("[data-nav='next']").click()
    page.fill("#f-learning_rate", "5e-3")
    page.locator("fieldset[data-section='hyper'] details.advanced summary").click()
    page.fill("#f-max_steps", "100")
    page.fill("#f-logging_steps", "1")
    page.fill("#f-save_steps", "50")
    page.select_option("#f-eval_strategy", '"steps"')
    page.fill("#f-eval_steps", "25")
    shoot("3-parameters")
    page.locator("[data-nav='next']").click()
    page.locator("[data-nav='next']").click()
    # The confirm step shows the estimate before anything is created.
    estimate = page.locator("#estimate-table")
    estimate.wait_for()
    assert "GiB" in estimate.inner_text() and "/ 100" in estimate.inner_text()  # total steps
    assert console_server.platform.tasks.list()["total"] == 0
    shoot("5-confirm")
    page.locator("[data-nav='create']").click()
    page.wait_for_url(re.compile(r"/console/tasks/\d+$"))
    task_id = int(page.url.rsplit("/", 1)[1])
    created = console_server.platform.tasks.get(task_id)
    assert created.training_args["max_steps"] == 100 and created.training_args["learning_rate"] == 5e-3
    # Only what the user changed is sent: every other parameter keeps the schema's default (or 'auto' rule).
    assert set(created.training_args) == {"template", "cutoff_len", "learning_rate", "max_steps", "logging_steps",
                                          "save_steps", "eval_strategy", "eval_steps", "model_name_or_path",
                                          "dataset", "output_dir"}

    # Live: the panel and the charts refresh while the task runs, in the same document (no reload). The worker is
    # held at its first logged step (the gate) while the page is watched, so a tiny run cannot end between two
    # refreshes however fast or slow the machine is; released, it runs at full speed.
    assert created.run_dir == str(first_task_gate.run_dir)
    page.evaluate("""() => {
        window.__sameDocument = true;
        window.__updates = [];
        document.body.addEventListener('htmx:afterSwap', (e) => {
            if (e.detail.target.id === 'task-live') window.__updates.push(Date.now());
        });
    }""")
    page.locator("#task-live[data-status='running']").wait_for(timeout=180_000)
    wait_for_step(page, "1 / 100", timeout_ms=300_000)  # the worker loads the model before its first step
    page.evaluate("window.__updates = []")  # count refreshes from here: the held worker takes no CPU from them
    # Three refreshes arrive by themselves in the same document. How far apart depends on the machine's load; the
    # one-second trigger itself is checked in tests/integration/web/test_tasks_pages.py.
    page.wait_for_function("window.__updates.length >= 3", timeout=120_000)
    assert page.locator("#task-live").get_attribute("data-status") == "running"
    assert step_shown(page) == "1 / 100"  # held: still the same step
    shoot("6-running")

    first_task_gate.release()
    page.wait_for_function("document.querySelector('[data-fact=step]').textContent.trim() !== '1 / 100'",
                           timeout=180_000)
    assert step_shown(page).endswith(" / 100")  # a later step, shown live (the run may already be over)

    page.locator("#task-live[data-status='completed']").wait_for(timeout=300_000)
    assert page.evaluate("window.__sameDocument") is True
    page.wait_for_function("document.getElementById('task-detail').dataset.ended === 'true'")
    page.wait_for_function("Number(document.getElementById('loss-chart').dataset.points) >= 100")
    points = int(page.locator("#loss-chart").get_attribute("data-points"))
    eval_points = len(console_server.platform.tasks.metrics(task_id).eval_loss)
    assert eval_points >= 2 and points == 100 + eval_points  # every train and eval point is on the chart
    assert int(page.locator("#lr-chart").get_attribute("data-points")) == 100
    log_lines = page.locator("#task-log").inner_text().strip().splitlines()
    assert log_lines and any("saved" in line for line in log_lines)
    assert page.locator("#checkpoints tr[data-step]").count() == 2
    shoot("7-completed")

    # Closing and reopening: everything comes from the server, so the whole chart and log are back.
    page.goto("/console/tasks")
    page.goto(f"/console/tasks/{task_id}")
    page.wait_for_function(f"Number(document.getElementById('loss-chart').dataset.points) === {points}")
    page.wait_for_function("document.getElementById('task-detail').dataset.ended === 'true'")
    assert page.locator("#task-log").inner_text().strip().splitlines() == log_lines
    shoot("8-reopened")
    assert not page_errors, "\n".join(page_errors)


def test_a_wrong_field_shows_its_error_there_and_creates_nothing(console_server, page, page_errors, shoot):
    page.goto("/console/tasks/new")
    page.fill("#f-name", "Bad Name")
    page.fill("#f-baseModel", str(console_server.model_dir))
    open_section(page, "data")
    page.fill("#f-datasetPath", str(console_server.dataset_dir))
    open_section(page, "parameters")
    page.fill("#f-lora_rank", "0")
    open_section(page, "confirm")
    # The estimate is refused: the form goes back to the first step with an error and marks each field.
    name_error = page.locator("[data-field='name'] .field-error")
    name_error.wait_for()
    assert "lowercase" in name_error.inner_text()
    assert set(page.locator("[data-step-tab='model']").get_attribute("class").split()) == {"current", "has-error"}
    assert "has-error" in page.locator("[data-step-tab='parameters']").get_attribute("class")
    assert page.locator("#form-errors").is_visible()
    shoot("1-errors-at-name")
    open_section(page, "parameters")
    rank_error = page.locator("[data-field='trainingArgs.lora_rank'] .field-error")
    assert rank_error.is_visible() and "≥ 1" in rank_error.inner_text()
    shoot("2-error-at-lora-rank")
    assert console_server.platform.tasks.list()["total"] == 0
    # A name that passes the estimate but is taken: createTask refuses it, at the name field again.
    taken = create_task(console_server, "taken-name")
    open_section(page, "model")
    page.fill("#f-name", "taken-name")
    open_section(page, "parameters")
    page.fill("#f-lora_rank", "4")
    open_section(page, "confirm")
    page.locator("#estimate-table").wait_for()
    assert page.locator(".field.invalid").count() == 0 and page.locator("#form-errors").is_hidden()
    page.locator("[data-nav='create']").click()
    page.locator("[data-field='name'].invalid").wait_for()
    assert "already exists" in page.locator("[data-field='name'] .field-error").inner_text()
    shoot("3-name-taken")
    assert [t["id"] for t in console_server.platform.tasks.list()["items"]] == [taken["id"]]
    # Fixed, the same form creates the task.
    page.fill("#f-name", "good-name")
    open_section(page, "confirm")
    page.locator("#estimate-table").wait_for()
    page.locator("[data-nav='create']").click()
    page.wait_for_url(re.compile(r"/console/tasks/\d+$"))
    assert [t["name"] for t in console_server.platform.tasks.list()["items"]] == ["good-name", "taken-name"]
    assert not real_errors(page_errors), "\n".join(page_errors)


def planned_truncation(server: ConsoleServer, cutoff_len: int) -> dict[str, dict[str, int]]:
    """What the planner reports for the form's configuration: per training dataset, the samples it cuts."""
    body = {"name": "short-cutoff", "baseModel": str(server.model_dir), "datasetPath": str(server.dataset_dir),
            "trainingArgs": {"template": "chatml", "cutoff_len": cutoff_len}}
    answer = api_post(f"{server.url}/finetuning/estimateTask", json=body, timeout=120)
    assert answer.status_code == 200, answer.text
    return answer.json()["estimate"]["dataset"]["truncation"]


def truncation_shown(page, cut: bool) -> list[str]:
    """The confirm step's truncation lines, once the estimate for the current form has arrived."""
    page.wait_for_function("(cut) => { const box = document.getElementById('truncation'); "
                           "return box !== null && box.dataset.cut === String(cut); }", arg=cut)
    return page.locator("#truncation li").all_inner_texts()


@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_the_confirm_step_shows_the_samples_cut_at_cutoff_len(console_server, locale, page, page_errors, shoot):
    strings = catalog("zh" if locale.startswith("zh") else "en")
    page.goto("/console/tasks/new")
    page.fill("#f-name", "short-cutoff")
    page.fill("#f-baseModel", str(console_server.model_dir))
    page.select_option("#f-template", '"chatml"')
    open_section(page, "data")
    page.fill("#f-datasetPath", str(console_server.dataset_dir))
    page.fill("#f-cutoff_len", "16")
    open_section(page, "confirm")
    planned = planned_truncation(console_server, 16)
    assert planned and all(cut["over_cutoff"] > 0 and cut["tokens_cut"] > 0 for cut in planned.values()), planned
    assert truncation_shown(page, cut=True) == [
        strings["js.truncation_cut"].format(name=name, over=f"{cut['over_cutoff']:,}", samples=f"{cut['samples']:,}",
                                            cutoff=16, tokens=f"{cut['tokens_cut']:,}")
        for name, cut in planned.items()]
    assert page.locator("#truncation li.warn").count() == len(planned)  # highlighted as a warning
    shoot("1-samples-cut")

    # A cutoff_len longer than every sample: each dataset says nothing is cut, without the warning.
    open_section(page, "data")
    page.fill("#f-cutoff_len", "1024")
    open_section(page, "confirm")
    planned = planned_truncation(console_server, 1024)
    assert truncation_shown(page, cut=False) == [
        strings["js.truncation_none"].format(name=name, samples=f"{cut['samples']:,}", cutoff=1024)
        for name, cut in planned.items()]
    assert page.locator("#truncation li.warn").count() == 0
    shoot("2-nothing-cut")
    assert console_server.platform.tasks.list()["total"] == 0
    unexpected = [e for e in page_errors if "status of 422" not in e]  # the refused estimate, as the browser logs it
    assert not unexpected, "\n".join(unexpected)


def test_stop_a_running_task_from_the_list(console_server, first_task_gate, page, page_errors, shoot):
    # Held at its first logged step (the gate) until the stop is asked, so the stop lands mid-run on any machine.
    task = create_task(console_server, "long-run")
    assert console_server.platform.tasks.get(task["id"]).run_dir == str(first_task_gate.run_dir)
    page.goto("/console/tasks")
    row = page.locator(f"tr[data-task-id='{task['id']}']")
    row.locator(".badge.running").wait_for(timeout=180_000)  # the list refreshes itself while a task is active
    until(lambda: console_server.platform.tasks.get(task["id"]).step >= 1, "the held task logged its first step")
    row.locator("[data-action='stop']").click()
    dialog = page.locator("#confirm-dialog")
    assert "long-run" in dialog.locator(".dialog-title").inner_text()
    shoot("1-confirm-stop")
    dialog.locator(".dialog-confirm").click()
    wait_for(console_server, task["id"], {"stopping"})
    first_task_gate.release()
    row.locator(".badge.stopped").wait_for(timeout=180_000)
    stopped = wait_for(console_server, task["id"], {"stopped"})
    # Graceful: the worker ends the step after the held one and saves a checkpoint there.
    assert stopped["step"] == 2 and [c["step"] for c in stopped["checkpoints"]] == [2], stopped
    assert set(row.locator("[data-action]").evaluate_all("els => els.map(e => e.dataset.action)")) == {
        "details", "copy", "resume", "publish", "delete"}
    shoot("2-stopped")
    assert not page_errors, "\n".join(page_errors)


def test_copy_delete_and_publish(console_server, page, page_errors, shoot):
    task = create_task(console_server, "qa-lora", learning_rate=2e-3, lora_rank=16)
    done = wait_for(console_server, task["id"], {"completed"})
    assert [c["step"] for c in done["checkpoints"]] == [10, 20]

    # Copy: the create form, pre-filled; created as it stands.
    page.goto("/console/tasks")
    page.locator(f"tr[data-task-id='{task['id']}'] [data-action='copy']").click()
    assert page.locator("#f-name").input_value() == "qa-lora-copy"
    open_section(page, "parameters")
    assert page.locator("#f-lora_rank").input_value() == "16"
    page.fill("#f-lora_rank", "4")
    shoot("1-copy-form")
    open_section(page, "confirm")
    page.locator("#estimate-table").wait_for()
    page.locator("[data-nav='create']").click()
    page.wait_for_url(re.compile(r"/console/tasks/\d+$"))
    copy = console_server.platform.tasks.get(int(page.url.rsplit("/", 1)[1]))
    assert copy.name == "qa-lora-copy" and copy.training_args["lora_rank"] == 4
    assert copy.training_args["learning_rate"] == 2e-3 and copy.base_model == str(console_server.model_dir)

    # Publish a checkpoint from the detail page.
    page.goto(f"/console/tasks/{task['id']}")
    page.locator("#checkpoints tr[data-step='10'] [data-action='publish']").click()
    dialog = page.locator("#confirm-dialog")
    assert dialog.locator("#publish-step").input_value() == "10"
    dialog.locator("#publish-name").fill("qa-lora-step10")
    shoot("2-publish")
    dialog.locator(".dialog-confirm").click()
    page.locator(".toast").filter(has_text="qa-lora-step10").wait_for()
    models = console_server.platform.models.list(kind="finetuned")["items"]
    assert [(m["name"], m["taskId"], m["checkpointStep"]) for m in models] == [("qa-lora-step10", task["id"], 10)]

    # Delete from the list: confirmed, the row goes, the task is gone from the API too.
    wait_for(console_server, copy.id, {"completed", "failed"})
    page.goto("/console/tasks")
    row = page.locator(f"tr[data-task-id='{task['id']}']")
    row.locator("[data-action='delete']").click()
    shoot("3-confirm-delete")
    page.locator("#confirm-dialog .dialog-confirm").click()
    row.wait_for(state="detached")
    assert api_get(f"{console_server.url}/finetuning/getTask", params={"id": task["id"]}).status_code == 404
    assert page.locator(f"tr[data-task-id='{copy.id}']").count() == 1
    shoot("4-deleted")
    assert not page_errors, "\n".join(page_errors)


def test_switch_language_on_the_task_pages(console_server, page, page_errors, shoot):
    task = create_task(console_server, "zh-check")
    wait_for(console_server, task["id"], {"completed"})
    page.goto(f"/console/tasks/{task['id']}")
    page.locator(".lang-switch a[data-lang='zh']").click()
    page.wait_for_url(f"**/console/tasks/{task['id']}")
    zh = catalog("zh")
    assert page.locator("#task-live .badge").inner_text() == zh["status.completed"]
    assert page.locator("#log-follow").inner_text() == zh["js.log_pause"]
    page.wait_for_function("Number(document.getElementById('loss-chart').dataset.points) > 0")
    assert zh["js.series_train_loss"] in page.locator("#loss-chart").inner_text()
    shoot("1-detail-zh")
    page.goto("/console/tasks/new")
    assert page.locator("h1").inner_text() == zh["form.title"]
    assert page.locator("[data-step-tab='parameters']").inner_text().endswith(zh["form.step.parameters"])
    assert "秩" in page.locator("[data-field='trainingArgs.lora_rank'] .help").inner_text()
    shoot("2-form-zh")
    page.locator(".lang-switch a[data-lang='en']").click()
    page.wait_for_url("**/console/tasks/new")
    assert page.locator("h1").inner_text() == catalog("en")["form.title"]
    assert not page_errors, "\n".join(page_errors)


def test_a_grpo_task_charts_its_stage_figures_and_shows_the_samples_of_a_chosen_step(console_server, page,
                                                                                    page_errors, shoot):
    """No training: a finished GRPO task written into the store and its run directory, as a worker would leave it."""
    import json

    from tuneforge.store import MetricPoint, Task

    run_dir = console_server.settings.runs_path / "grpo-seeded"
    run_dir.mkdir(parents=True)
    samples = [{"step": step, "prompt": f"What is {step} + {step}? Answer with the number only.",
                "completion": str(2 * step) if step > 1 else "3", "reward": 1.0 if step > 1 else 0.0,
                "scores": {"exact_answer": 1.0 if step > 1 else 0.0},
                "reasons": {} if step > 1 else {"exact_answer": "expected 2"}} for step in (1, 2, 3)]
    (run_dir / "completions.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    with console_server.platform.db.session() as session:
        task = Task(name="grpo-seeded", base_model="bundled", dataset="arithmetic_prompts", stage="grpo",
                    output_path=str(run_dir / "output"), finetuning_type="lora", training_args={"stage": "grpo"},
                    status="completed", run_dir=str(run_dir), log_path=str(run_dir / "train.log"), metrics={},
                    created_at=time.time(), step=3, total_steps=3, progress=100.0, last_seq=3)
        session.add(task)
        session.flush()
        task_id = task.id
        session.add_all(MetricPoint(task_id=task_id, seq=step, kind="train", step=step, loss=0.1, time=time.time(),
                                    extra={"reward": step / 3, "kl": 0.01 * step}) for step in (1, 2, 3))
    page.goto(f"/console/tasks/{task_id}")
    page.wait_for_function("Number(document.querySelector('[data-stage-metric=\"reward\"] .chart').dataset.points)"
                           " === 3")
    assert page.locator("[data-stage-metric='kl']").is_visible()
    assert page.locator("[data-stage-metric='reward_std']").is_hidden()  # no points: no chart
    panel = page.locator("#task-samples")
    assert panel.locator("article[data-step='3'] [data-part='completion']").inner_text() == "6"
    shoot("1-grpo-detail")
    panel.locator("#samples-step").select_option("1")
    page.locator("#task-samples article[data-step='1']").wait_for()
    assert page.locator("#task-samples tr[data-grader='exact_answer']").inner_text().split("\t")[-1] == "expected 2"
    shoot("2-step-1")
    assert not page_errors, "\n".join(page_errors)
