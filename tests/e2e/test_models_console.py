"""The models console in a real browser, on a real fine-tune of the tiny model: publish the completed task from the
models page, evaluate it beside its base and read the report, deploy it, chat with it in the playground (the answer
streams in; multi-turn; compare mode streams two answers side by side), then stop the deployment. Screenshots of
every page under test-artifacts/screenshots/test_publish_evaluate_deploy_chat_and_stop/."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ConsoleServer
from tests.fixtures.auth import api_get, api_post, env_headers

pytestmark = pytest.mark.browser
TRAINING = {"template": "chatml", "cutoff_len": 64, "per_device_train_batch_size": 4, "learning_rate": 5e-3,
            "max_steps": 4, "logging_steps": 1, "save_steps": 2, "lora_rank": 8, "report_to": "none", "seed": 7}
# The tiny model serves and evaluates in seconds; a wait ends as soon as the page shows it, so a loaded shared
# machine gets minutes.
SERVING_TIMEOUT_MS = 300_000
EVALUATION_TIMEOUT_MS = 300_000


def trained_task(server: ConsoleServer) -> dict[str, Any]:
    body = {"name": "tiny-qa-run", "baseModel": str(server.model_dir), "datasetPath": str(server.dataset_dir),
            "trainingArgs": TRAINING}
    created = api_post(f"{server.url}/finetuning/createTask", json=body, timeout=120)
    assert created.status_code == 201, created.text
    deadline = time.monotonic() + 300
    while (task := api_get(f"{server.url}/finetuning/getTask", params={"id": created.json()["id"]}).json())[
            "status"] not in ("completed", "failed", "stopped"):
        assert time.monotonic() < deadline, f"the task did not finish: {task['status']}"
        time.sleep(0.3)
    assert task["status"] == "completed", task["errorMessage"]
    return task


def confirm(page) -> None:
    page.locator("#confirm-dialog .dialog-confirm").click()


def count_text_updates(page, selector: str) -> None:
    """Counts, on the page, how many times an assistant answer's text in `selector` changed while streaming.

    Each change is one mutation record. The observer's callback is not the count: the browser hands it every record
    of a task at once, so chunks that arrive together (a slow browser, a fast server) would count as one."""
    page.evaluate("""(selector) => {
        window.__updates = 0;
        new MutationObserver((records) => {
            window.__updates += records.filter((r) => r.target.classList
                && r.target.classList.contains('assistant')).length;
        }).observe(document.querySelector(selector), {childList: true, subtree: true, characterData: true});
    }""", selector)


def test_publish_evaluate_deploy_chat_and_stop(console_server, page, page_errors, shoot):
    task = trained_task(console_server)

    # -- publish from the models page --------------------------------------------------------------------------
    page.goto("/console/models")
    page.locator("[data-action='publish-task']").click()
    page.locator("#publish-task option").first.wait_for(state="attached")  # the dialog fetches the tasks
    assert page.locator("#publish-task option").all_inner_texts() == ["tiny-qa-run · Completed"]
    page.locator("#publish-step option").nth(2).wait_for(state="attached")  # final, step 2, step 4
    assert page.locator("#publish-step option").all_inner_texts() == ["Final model", "Step 2", "Step 4"]
    page.fill("#publish-name", "tiny-qa")
    shoot("1-publish-dialog")
    confirm(page)
    page.wait_for_url(re.compile(r"/console/models/\d+$"))
    model_id = int(page.url.rsplit("/", 1)[1])
    lineage = page.locator("#model-lineage")
    assert lineage.locator("[data-lineage='task']").inner_text() == "tiny-qa-run"
    assert lineage.locator("[data-lineage='task']").get_attribute("href") == f"/console/tasks/{task['id']}"
    assert lineage.locator("[data-lineage='base']").inner_text() == str(console_server.model_dir)
    assert lineage.locator("[data-lineage='dataset']").inner_text() == str(console_server.dataset_dir)
    shoot("2-model")

    # -- evaluate beside the base and export (merged), both in the background: progress on the model page -------
    page.locator("button[data-action='evaluate']").click()
    assert page.input_value("#evaluate-dataset") == str(console_server.dataset_dir)  # what it was trained on
    page.fill("#evaluate-max-samples", "4")
    page.fill("#evaluate-max-new-tokens", "8")
    confirm(page)
    page.locator("#model-evaluations tr[data-evaluation-id]").wait_for()
    page.locator("button[data-action='export']").click()
    page.select_option("#export-dtype", "float16")
    confirm(page)
    page.locator("#model-exports .export-job").wait_for()
    shoot("3-evaluation-and-export-running")
    # the panel refreshes itself (htmx) until both jobs end: no reload
    page.locator("#model-evaluations tr[data-status='completed']").wait_for(timeout=EVALUATION_TIMEOUT_MS)
    page.locator("#model-exports .export-job[data-status='completed']").wait_for(timeout=EVALUATION_TIMEOUT_MS)
    files = page.locator("#model-exports .export-files tbody tr").all_inner_texts()
    assert any(".safetensors" in row and ("kB" in row or "MB" in row) for row in files), files
    assert "float16" in page.locator("#model-exports .export-job").inner_text()
    shoot("3b-export-done")
    page.locator("#model-evaluations a[data-action='report']").click()
    page.wait_for_url(re.compile(r"/console/evaluations/\d+$"))
    scores = page.locator("#evaluation-scores")
    assert scores.locator("thead th").all_inner_texts()[1:] == ["base", "tiny-qa", "Change"]
    assert scores.locator("tr[data-metric='eval_loss'] td").count() == 4
    assert page.locator("#worst-samples article.sample").count() >= 1
    first = page.locator("#best-samples article.sample").first
    assert first.locator(".output").count() == 2  # both models' answers to the same prompt
    shoot("4-evaluation-report")

    # -- deploy from the model page; the deployment page follows it until it runs -------------------------------
    page.goto(f"/console/models/{model_id}")
    page.locator("button[data-action='deploy']").click()
    page.fill("#deploy-name", "tiny-qa-live")
    confirm(page)
    page.wait_for_url(re.compile(r"/console/deployments/\d+$"))
    page.locator("#deployment-live[data-status='running'][data-healthy='true']").wait_for(timeout=SERVING_TIMEOUT_MS)
    shoot("5-deployment-running")

    # -- chat: the answer streams in and equals the API's answer for the same seed ----------------------------
    # (sampling with a seed: the tiny random model's greedy answer is blank lines, which show nothing)
    page.locator("#deployment-live a[data-action='chat']").click()
    page.wait_for_url(re.compile(r"/console/chat\?model=tiny-qa-live"))
    page.fill("#chat-system", "You are Forge.")
    page.fill("#chat-temperature", "1")
    page.fill("#chat-max-tokens", "12")
    page.fill("#chat-seed", "7")
    count_text_updates(page, "#conversation-a")
    page.fill("#chat-input", "Who are you?")
    with page.expect_request("**/v1/chat/completions") as sent:
        page.keyboard.press("Enter")
    first_answer = page.locator("#conversation-a .message.assistant[data-done='true']")
    first_answer.wait_for()
    assert json.loads(sent.value.post_data)["stream"] is True
    text = first_answer.inner_text()
    # several chunks arrived, each shown as it came: the answer's text changed more than a few times
    assert page.evaluate("window.__updates") > 3, "the answer did not stream in"
    reference = api_post(f"{console_server.url}/v1/chat/completions", timeout=300, json={
        "model": "tiny-qa-live", "temperature": 1, "max_tokens": 12, "seed": 7,
        "messages": [{"role": "system", "content": "You are Forge."}, {"role": "user", "content": "Who are you?"}],
    }).json()["choices"][0]["message"]["content"]
    assert text == reference and text.strip(), repr(text)
    assert "12 tokens" in page.locator("#conversation-a .message-stats").inner_text()

    # a second turn carries the history
    page.fill("#chat-input", "And again?")
    with page.expect_request("**/v1/chat/completions") as sent:
        page.locator("#chat-send").click()
    page.locator("#conversation-a .message.assistant[data-done='true']").nth(1).wait_for()
    roles = [m["role"] for m in json.loads(sent.value.post_data)["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    shoot("6-chat")
    # a reload of the tab keeps the conversation and the settings
    page.reload()
    assert page.locator("#conversation-a .message").count() == 4
    assert page.locator("#conversation-a .message.assistant").first.inner_text() == text
    assert page.input_value("#chat-system") == "You are Forge." and page.input_value("#chat-seed") == "7"

    # compare: the deployment and the model's name (routed to the same deployment) answer side by side
    page.locator("#chat-clear").click()
    page.locator("#chat-compare").check()
    page.select_option("#chat-model-b", "tiny-qa")
    assert "compare=tiny-qa" in page.url  # a reload opens the same comparison
    page.fill("#chat-input", "Who are you?")
    page.keyboard.press("Enter")
    left = page.locator("#conversation-a .message.assistant[data-done='true']")
    right = page.locator("#conversation-b .message.assistant[data-done='true']")
    left.wait_for()
    right.wait_for()
    # both streamed a whole answer (decoded together in one batch, so not necessarily token-identical)
    for side in (left, right):
        assert side.inner_text().strip() and "blank" not in (side.get_attribute("class") or "")
    assert page.locator("#conversation-b .message-stats").inner_text().startswith("tiny-qa ·")
    shoot("7-chat-compare")

    # -- stop the deployment from its page ----------------------------------------------------------------------
    page.goto("/console/deployments")
    shoot("8-deployments")
    page.locator("tr[data-deployment-name='tiny-qa-live'] a", has_text="Details").click()
    page.locator("#deployment-live button[data-action='stop-deployment']").click()
    confirm(page)
    page.locator("#deployment-live[data-status='stopped']").wait_for(timeout=180_000)
    assert page.locator("#deployment-live button[data-action='start-deployment']").is_visible()
    shoot("9-deployment-stopped")
    served = httpx.get(f"{console_server.url}/v1/models", headers=env_headers()).json()["data"]
    assert [m["id"] for m in served if m["loaded"]] == []

    # -- delete the deployment, then the model, each through its confirmation ----------------------------------
    page.locator("#deployment-live button[data-action='delete-deployment']").click()
    confirm(page)
    page.wait_for_url("**/console/deployments")
    assert page.locator("tr[data-deployment-name='tiny-qa-live']").count() == 0
    page.goto(f"/console/models/{model_id}")
    page.locator("#model-detail .page-head button[data-action='delete-model']").click()
    assert "tiny-qa" in page.locator("#confirm-dialog .dialog-title").inner_text()
    confirm(page)
    page.wait_for_url("**/console/models")
    assert page.locator("tr[data-model-name='tiny-qa']").count() == 0

    page.goto("/console/system")
    assert page.locator("#devices tr[data-device]").count() == 1
    shoot("10-system")
    page.locator(".lang-switch a[data-lang='zh']").click()
    page.wait_for_load_state("networkidle")
    assert page.locator("#devices h2").inner_text() == "设备清单"
    shoot("11-system-zh")
    assert not page_errors, "\n".join(page_errors)


def test_register_a_base_model_and_deploy_it_from_the_deployments_page(console_server, page, page_errors, shoot):
    """The two forms outside the model page: errors show at their fields and create nothing; then they work."""
    page.goto("/console/models")
    page.locator("[data-action='show-register']").click()
    page.fill("#register-name", "tiny-base")
    page.fill("#register-source", str(console_server.model_dir) + "-missing")
    page.locator("#register-form button[type=submit]").click()
    error = page.locator("#register-form .field[data-field='source'] .field-error")
    error.wait_for()
    assert page.locator("#register-form .form-error").inner_text() == "Fix the marked fields."
    assert "not found" in error.inner_text()
    assert page.locator("#register-source").get_attribute("class") == "invalid"
    shoot("1-register-error")
    assert api_get(f"{console_server.url}/models/getModelList", params={"name": "tiny-base"}).json()["total"] == 0

    page.fill("#register-source", str(console_server.model_dir))
    page.locator("#register-form button[type=submit]").click()
    page.locator("tr[data-model-name='tiny-base'][data-status='ready']").wait_for()
    assert page.locator("#register-panel").is_hidden()
    shoot("2-registered")
    # the list's Deploy link opens the model's page with the deploy dialog up
    page.locator("tr[data-model-name='tiny-base'] a[data-action='deploy-link']").click()
    page.locator("#confirm-dialog[open]").wait_for()
    assert page.locator("#confirm-dialog .dialog-title").inner_text() == "Deploy tiny-base"
    page.locator("#confirm-dialog button[value='cancel']").click()

    page.goto("/console/deployments")
    page.locator("[data-action='show-create']").click()
    page.select_option("#create-model", label="tiny-base · Base")
    assert page.input_value("#create-name") == "tiny-base"  # the model's name, until one is typed
    page.fill("#create-name", "tiny-base-live")
    page.select_option("#create-engine", "vllm")  # not installed here: refused at the field, nothing started
    page.locator("#create-form button[type=submit]").click()
    page.locator("#create-form .field[data-field='engine'] .field-error").wait_for()
    assert "vLLM" in page.locator("#create-form .field[data-field='engine'] .field-error").inner_text()
    shoot("3-deploy-error")
    assert api_get(f"{console_server.url}/deployments/getDeploymentList").json()["total"] == 0

    page.select_option("#create-engine", "transformers")
    page.locator("#create-form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/console/deployments/\d+$"))
    assert page.locator("#deployment-live").get_attribute("data-status") in ("starting", "running")
    shoot("4-deployment-starting")
    page.locator("#deployment-live button[data-action='delete-deployment']").click()
    confirm(page)
    page.wait_for_url("**/console/deployments")
    assert api_get(f"{console_server.url}/deployments/getDeploymentList").json()["total"] == 0
    assert not [e for e in page_errors if not re.search(r"Failed to load resource: .* 4(04|09|22)", e)], page_errors
