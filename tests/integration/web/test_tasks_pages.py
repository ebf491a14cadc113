"""The tasks pages as the server renders them (TestClient, no browser): list with badges, progress, filters, paging
and the actions each status allows; the create form with every schema field and its help in the page's language;
copy pre-fills it; every error the API can return names an input of the form; the detail's live panel polls only
while the task is active; compare highlights what differs; language from cookie or Accept-Language."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from tests.integration.service.conftest import task_body
from tests.integration.web.task_rows import seed_tasks
from tuneforge.schemas.parameter_reference import fields_by_group
from tuneforge.service.platform import Platform
from tuneforge.service.tasks.planning import TOP_LEVEL
from tuneforge.store import Task
from tuneforge.web.i18n import catalog


@pytest.fixture()
def dataset_dir(tmp_path: Path) -> Path:
    from tests.e2e.conftest import write_qa_dataset

    return write_qa_dataset(tmp_path / "data" / "qa")


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def rows_of(html: str) -> dict[str, str]:
    """task name → the HTML of its row in the list."""
    return {m.group(2): m.group(0) for m in re.finditer(r'<tr data-task-id="(\d+)" data-task-name="([^"]+)">.*?</tr>',
                                                        html, re.S)}


def actions_of(row: str) -> set[str]:
    return set(re.findall(r'data-action="(\w+)"', row))


def set_status(platform: Platform, status: str) -> None:
    with platform.db.session() as session:
        session.execute(update(Task).values(status=status))


def test_root_redirects_to_tasks_and_unknown_pages_are_a_translated_404(client):
    assert client.get("/", follow_redirects=False).headers["location"] == "/console/tasks"
    assert client.get("/console", follow_redirects=False).headers["location"] == "/console/tasks"
    missing = client.get("/console/no-such-page", headers={"accept-language": "zh-CN"})
    assert missing.status_code == 404 and catalog("zh")["error.page_not_found"] in missing.text
    gone = client.get("/console/tasks/999")
    assert gone.status_code == 404 and "Task 999 does not exist" in text_of(gone.text)


def test_language_from_cookie_else_browser_and_the_switch_remembers_it(client):
    assert "<h1>微调任务</h1>" in client.get("/console/tasks", headers={"accept-language": "zh-CN,zh;q=0.9"}).text
    assert "<h1>Fine-tuning tasks</h1>" in client.get("/console/tasks").text
    switched = client.get("/console/language", params={"to": "zh", "next": "/console/compare"}, follow_redirects=False)
    assert switched.status_code == 303 and switched.headers["location"] == "/console/compare"
    assert "lang=zh" in switched.headers["set-cookie"]
    client.cookies.set("lang", "zh")
    assert "<h1>微调任务</h1>" in client.get("/console/tasks", headers={"accept-language": "en"}).text
    # The switch only goes back into the console: never to another site.
    outside = client.get("/console/language", params={"to": "en", "next": "https://evil.example/"},
                         follow_redirects=False)
    assert outside.headers["location"] == "/console/tasks"


def test_list_shows_badges_progress_actions_filters_and_pages(client, platform):
    seed_tasks(platform.db, platform.settings.home, 30)
    page = client.get("/console/tasks")
    rows = rows_of(page.text)
    assert len(rows) == 20 and "Page 1 of 2" in text_of(page.text)
    assert next(iter(rows)) == "task-00029"  # newest first
    running, completed = rows["task-00020"], rows["task-00021"]
    assert 'class="badge running"' in running and 'aria-valuenow="42.0"' in running
    assert actions_of(running) == {"details", "stop", "copy"}  # a running task is not deleted from the list
    assert actions_of(completed) == {"details", "copy", "publish", "delete"}
    assert actions_of(rows["task-00027"]) == {"details", "copy", "resume", "delete"}  # failed
    assert "123k" in completed  # tokens (123,477), compact
    assert "59 s" in completed  # elapsed: started 1 s after creation, ended 60 s after
    # Filters: status, name search, experiment; the second page.
    only_running = rows_of(client.get("/console/tasks", params={"status": "running"}).text)
    assert set(only_running) == {"task-00000", "task-00010", "task-00020"}
    assert set(rows_of(client.get("/console/tasks", params={"q": "task-0001"}).text)) == {
        f"task-{i:05d}" for i in range(10, 20)}
    in_experiment = rows_of(client.get("/console/tasks", params={"experiment": 1}).text)
    assert set(in_experiment) == {f"task-{i:05d}" for i in range(0, 30, 4)}
    assert len(rows_of(client.get("/console/tasks", params={"page": 2}).text)) == 10
    assert "No task matches" in client.get("/console/tasks", params={"q": "nothing-like-this"}).text


def test_the_list_refreshes_itself_only_while_a_task_is_active(client, platform):
    seed_tasks(platform.db, platform.settings.home, 3)
    fragment = client.get("/console/tasks/rows")
    assert fragment.status_code == 200 and 'hx-trigger="refresh, every 2s"' in fragment.text
    assert "<html" not in fragment.text  # the fragment alone, for htmx to swap in
    set_status(platform, "completed")
    assert 'hx-trigger="refresh"' in client.get("/console/tasks/rows").text


def test_the_create_form_has_every_schema_field_with_its_help_in_the_language(client):
    english, chinese = client.get("/console/tasks/new").text, client.get(
        "/console/tasks/new", headers={"accept-language": "zh-CN"}).text
    described = [d for group in fields_by_group().values() for d in group if d["name"] not in TOP_LEVEL]
    for field in described:
        assert f'name="trainingArgs.{field["name"]}"' in english, field["name"]
    lora_rank = next(d for d in described if d["name"] == "lora_rank")
    assert lora_rank["help_zh"] in unescape(chinese) and lora_rank["help_en"] not in unescape(chinese)
    assert lora_rank["help_en"] in unescape(english)
    for step in ("model", "data", "parameters", "output", "confirm"):
        assert catalog("zh")[f"form.step.{step}"] in chinese
    for name in ("name", "baseModel", "datasetPath", "outputPath", "gpuConfig.gpu_count"):
        assert f'data-field="{name}"' in english


def test_every_error_of_create_task_names_an_input_of_the_form_and_nothing_is_created(client, tiny_model_dir,
                                                                                        dataset_dir):
    form = client.get("/console/tasks/new").text
    body = task_body("Bad Name", tiny_model_dir, dataset_dir, lora_rank=0, learning_rate="fast", bf16=True,
                     fp16=True, cutoff_len=-1)
    body["outputPath"] = "/etc/not-allowed"
    body["gpuConfig"] = {"gpu_count": 9}
    answer = client.post("/finetuning/createTask", json=body)
    assert answer.status_code == 422
    fields = [d["field"] for d in answer.json()["error"]["details"]]
    expanded = []
    for field in fields:  # "trainingArgs.bf16, fp16" names two inputs, as the page's script reads it
        first, *others = [part.strip() for part in field.split(",")]
        expanded += [first] + [f"{first.rsplit('.', 1)[0]}.{o}" if "." not in o else o for o in others]
    assert {"name", "outputPath", "trainingArgs.lora_rank", "trainingArgs.learning_rate", "trainingArgs.bf16",
            "trainingArgs.fp16", "trainingArgs.cutoff_len"} <= set(expanded)
    assert [f for f in expanded if f'data-field="{f}"' not in form] == []
    assert client.get("/finetuning/getTaskList").json()["total"] == 0


def test_copy_opens_the_form_pre_filled(client, tiny_model_dir, dataset_dir):
    body = task_body("qa-lora-1", tiny_model_dir, dataset_dir, learning_rate=2e-4, lora_rank=16, bf16=True)
    body["description"] = "first try"
    created = client.post("/finetuning/createTask", json=body)
    assert created.status_code == 201, created.text
    page = client.get("/console/tasks/new", params={"copy": created.json()["id"]}).text
    value = lambda name: re.search(rf'name="{re.escape(name)}"[^>]*?value="([^"]*)"', page).group(1)  # noqa: E731
    assert value("name") == "qa-lora-1-copy" and value("description") == "first try"
    assert value("baseModel") == str(tiny_model_dir) and value("datasetPath") == str(dataset_dir)
    assert value("trainingArgs.learning_rate") == "0.0002" and value("trainingArgs.lora_rank") == "16"
    assert re.search(r'name="trainingArgs.bf16"[^>]*checked', page)
    assert re.search(r'<option value="&#34;chatml&#34;" selected>', page)
    assert "Copy of qa-lora-1" in page
    assert client.get("/console/tasks/new", params={"copy": 404}).status_code == 404


def test_detail_polls_while_active_then_stops_and_offers_publish(client, platform):
    seed_tasks(platform.db, platform.settings.home, 2)  # id 1 running (with a curve), id 2 completed
    detail = client.get("/console/tasks/1").text
    assert 'hx-trigger="every 1s"' in detail and 'data-refresh-ms="1000"' in detail
    assert "python -m tuneforge.engine.run" in detail  # the executed command
    assert '"lora_rank": 8' in detail  # the full config
    live = client.get("/console/tasks/1/live").text
    assert 'hx-trigger="every 1s"' in live and 'id="task-run" hx-swap-oob="true"' in live
    assert 'data-action="publish"' not in live and 'data-action="stop"' in live
    set_status(platform, "completed")
    ended = client.get("/console/tasks/1/live").text
    assert "hx-trigger" not in ended  # the swapped-in panel carries no trigger: polling ends
    assert ended.count('data-action="publish"') == 3  # the task, and each of its two checkpoints
    with platform.db.session() as session:
        session.delete(session.get(Task, 1))
    gone = client.get("/console/tasks/1/live")
    assert gone.status_code == 286 and "does not exist" in gone.text  # htmx stops polling on 286


def test_compare_overlays_the_chosen_tasks_and_highlights_differences(client, platform):
    seed_tasks(platform.db, platform.settings.home, 3)
    page = client.get("/console/compare", params={"ids": "1,2,999"}).text
    assert 'data-task-ids="1,2"' in page and "No such task: 999" in page
    row = lambda key: re.search(rf'<tr data-key="{key}" class="(\w+)">(.*?)</tr>', page, re.S)  # noqa: E731
    assert row("learning_rate").group(1) == "differs" and row("lora_rank").group(1) == "differs"
    assert row("template").group(1) == "same" and row("status").group(1) == "differs"  # running vs completed
    assert re.search(r'<tr data-key="cutoff_len"', page) is None  # neither set it
    # A key only one task set shows the other's default, marked as such.
    with platform.db.session() as session:
        task = session.get(Task, 2)
        task.training_args = {**task.training_args, "cutoff_len": 512}
    page = client.get("/console/compare", params={"ids": "1,2"}).text
    assert row("cutoff_len").group(1) == "differs" and "2048" in row("cutoff_len").group(2)
    assert "(default)" in row("cutoff_len").group(2)


def picker_names(page: str) -> list[str]:
    return re.findall(r'name="ids" value="\d+"(?: checked)?> ([\w-]+)', page)


def test_compare_picker_searches_and_keeps_the_chosen(client, platform):
    seed_tasks(platform.db, platform.settings.home, 12)
    page = client.get("/console/compare", params={"ids": "1", "q": "task-0001"}).text
    names: list[Any] = picker_names(page)
    assert names[0] == "task-00000" and set(names[1:]) == {"task-00010", "task-00011"}
