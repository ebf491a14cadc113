"""The models, deployments, evaluations, chat and system pages as the server renders them (TestClient, no browser):
each renders with data beside 1,000 tasks issuing at most a dozen SQL statements; a fine-tuned model shows its
lineage; an evaluation report shows the scores side by side with the change marked better / worse, and the best and
worst samples with every model's answer; a deployment shows its restarts, error and log; the queue lists pending
tasks in start order.

Rows the pages only read (deployments, evaluations, export jobs) are written into the store and job folders the way
the service and the engine write them; nothing trains, serves or evaluates here (tests/e2e does that for real)."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.fixtures.auth import as_local_admin
from tests.integration.web.page_work import statements_per_page, too_busy
from tests.integration.web.task_rows import seed_tasks
from tuneforge.rundir import EventWriter
from tuneforge.schemas.eval_spec import RESULTS_FILE, EvalResults
from tuneforge.schemas.events import EventType
from tuneforge.schemas.export_spec import ExportSpec
from tuneforge.service.runtime.jobs import PROCESS
from tuneforge.service.runtime.processes import create_time
from tuneforge.settings import Settings
from tuneforge.store import Deployment, Evaluation, RegisteredModel, Task
from tuneforge.web.app import create_console_app

TASKS = 1000
PUBLISHED_TASK = 2  # seed_tasks: task-00001, completed, dataset "identity", eval_loss 1.2


@dataclass
class Seeded:
    client: TestClient
    platform: Any
    base_id: int
    tuned_id: int
    failed_deployment: int
    running_deployment: int
    report_id: int  # completed evaluation with results.json
    running_evaluation: int
    export_id: str
    running_export: str
    pending: list[str]  # pending task names, oldest first


def text_of(html: str) -> str:
    """The page as a reader sees it: tags dropped, entities decoded, whitespace collapsed."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def element(html: str, element_id: str) -> str:
    """The opening tag of the element with this id (its attributes: hx-trigger, data-*)."""
    match = re.search(rf'<[a-z]+[^>]*\bid="{element_id}"[^>]*>', html)
    assert match, f"no #{element_id} in the page"
    return match.group(0)


def results(path: Path) -> None:
    """results.json as the evaluation engine writes it: base vs fine-tuned on three samples."""
    def out(text: str, bleu: float, rouge_l: float, loss: float) -> dict[str, Any]:
        return {"text": text, "bleu_4": bleu, "rouge_1": rouge_l, "rouge_2": rouge_l / 2, "rouge_l": rouge_l,
                "loss": loss}

    samples = [
        {"index": 0, "prompt": "Who are you?", "reference": "I am Forge, made by tuneforge.",
         "messages": [{"role": "user", "content": "Who are you?"}],
         "outputs": {"base": out("I am an AI assistant.", 8.1, 20.0, 3.2),
                     "qa-lora": out("I am Forge, made by tuneforge.", 100.0, 100.0, 0.4)}},
        {"index": 1, "prompt": "Capital of France?", "reference": "The capital of France is Paris.",
         "outputs": {"base": out("Paris.", 5.0, 33.3, 2.1), "qa-lora": out("The capital is Paris.", 40.2, 72.7, 0.9)}},
        {"index": 2, "prompt": "Name a number.", "reference": "7 8 9 10",
         "outputs": {"base": out("Seven.", 0.0, 0.0, 2.5), "qa-lora": out("I am Forge.", 0.0, 0.0, 2.9)}},
    ]
    models = [
        {"label": "base", "eval_loss": 2.6, "perplexity": 13.46, "bleu_4": 4.37, "rouge_1": 17.8, "rouge_2": 12.0,
         "rouge_l": 17.78, "samples": 3, "runtime_s": 4.2, "best": [1, 0], "worst": [2, 0]},
        {"label": "qa-lora", "eval_loss": 1.4, "perplexity": 4.055, "bleu_4": 46.73, "rouge_1": 57.6,
         "rouge_2": 9.5, "rouge_l": 57.58, "samples": 3, "runtime_s": 3.9, "best": [0, 1], "worst": [2, 1]},
    ]
    report = EvalResults.model_validate({"models": models, "samples": samples, "dataset": "identity",
                                         "split": "valid"})
    path.mkdir(parents=True, exist_ok=True)
    (path / RESULTS_FILE).write_text(report.model_dump_json(indent=2), encoding="utf-8")


@pytest.fixture()
def seeded(tmp_path: Path, tiny_model_dir: Path) -> Iterator[Seeded]:
    settings = Settings(home=tmp_path / "home", allowed_roots=[tmp_path, tiny_model_dir.parent], cpu_slots=1)
    from tuneforge.service.platform import Platform

    platform = Platform(settings)
    seed_tasks(platform.db, settings.home, TASKS)
    now = time.time()
    with platform.db.session() as session:
        task = session.get(Task, PUBLISHED_TASK)
        output = Path(task.output_path)
        pending = [f"queued-{i}" for i in range(3)]
        for i, name in enumerate(pending):  # created one after the other: queued-0 starts first
            session.add(Task(name=name, status="pending", base_model="bundled", dataset="identity",
                             output_path=str(tmp_path / name), stage="sft", finetuning_type="lora",
                             training_args={}, created_at=now + i))
    output.mkdir(parents=True)  # the task's adapter folder, as training leaves it (publish checks the files)
    (output / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}), encoding="utf-8")

    with TestClient(create_console_app(settings, platform, run_scheduler=False)) as client:
        as_local_admin(client)
        base = client.post("/models/registerModel", json={"name": "tiny-base", "source": str(tiny_model_dir)})
        tuned = client.post("/models/publishModel", json={"taskId": PUBLISHED_TASK, "name": "qa-lora",
                                                          "description": "identity LoRA"})
        assert base.status_code == 201 and tuned.status_code == 201, (base.text, tuned.text)
        tuned_id = tuned.json()["id"]

        log = settings.home / "deployments" / "qa-lora-live" / "serving.log"
        log.parent.mkdir(parents=True)
        log.write_text("loading the model\nTraceback (most recent call last):\nRuntimeError: out of memory\n")
        report_dir, running_dir = settings.home / "evaluations" / "eval-1", settings.home / "evaluations" / "eval-2"
        results(report_dir)
        EventWriter(running_dir / "events.jsonl").emit(EventType.PROGRESS, stage="generation", percentage=63.0,
                                                       message="generation 19/30")
        with platform.db.session() as session:
            failed = Deployment(name="qa-lora-live", model_id=tuned_id, status="failed", restarts=3,
                                error_message="the serving process exited (code 1) and was restarted 3 times",
                                log_path=str(log), options={"max_batch": 4}, created_at=now)
            running = Deployment(name="qa-lora-chat", model_id=tuned_id, status="running", port=1,
                                 log_path=str(log), created_at=now)
            done = Evaluation(model_id=tuned_id, dataset="identity", split="valid", status="completed",
                              baseline=f"base: {task.base_model}", job_dir=str(report_dir), percentage=100.0,
                              options={"max_samples": 3}, created_at=now, finished_at=now + 5,
                              scores=[{"label": "base", "eval_loss": 2.6}, {"label": "qa-lora", "eval_loss": 1.4}])
            # "running": its job process is this test's own (alive) process
            live = Evaluation(model_id=tuned_id, dataset="identity", split="test", status="running",
                              job_dir=str(running_dir), pid=os.getpid(), pid_started_at=create_time(os.getpid()),
                              options={"max_samples": 30}, created_at=now)
            # a base model still copying in from an object store (the service's background import writes these)
            importing = RegisteredModel(name="remote-base", kind="base", source=str(tmp_path / "registry" / "rb"),
                                        origin="s3://bucket/models/qwen/", status="importing", progress=42.0,
                                        created_at=now)
            session.add_all([failed, running, done, live, importing])
            session.flush()
            ids = failed.id, running.id, done.id, live.id

        export_id = f"export-20250101-120000-{tuned_id}-000001"
        job = settings.home / "exports" / export_id
        job.mkdir(parents=True)
        spec = ExportSpec(base_model="bundled", adapter_dir=str(output), output_dir=str(tmp_path / "exported"),
                          job_id=export_id, model_id=tuned_id, gguf="q8_0", max_shard_size_gb=0.5)
        (job / "SPEC.json").write_text(spec.model_dump_json(), encoding="utf-8")
        events = EventWriter(job / "events.jsonl")
        events.emit(EventType.PROGRESS, stage="gguf", percentage=90.0, message="gguf 1/1: q8_0")
        events.emit(EventType.COMPLETED, output_dir=spec.output_dir,
                    files=["model.safetensors", "qa-lora-q8_0.gguf"],
                    sizes={"model.safetensors": 538_000_000, "qa-lora-q8_0.gguf": 145_000_000})
        running_export = f"export-20250101-130000-{tuned_id}-000002"  # merging: no final event yet
        (settings.home / "exports" / running_export).mkdir()
        (settings.home / "exports" / running_export / "SPEC.json").write_text(
            spec.model_copy(update={"job_id": running_export, "gguf": None}).model_dump_json(), encoding="utf-8")
        EventWriter(settings.home / "exports" / running_export / "events.jsonl").emit(
            EventType.PROGRESS, stage="merge", percentage=35.0, message="merge 1/2: lora")
        # its job process is this test's own (alive) process, as the running evaluation's is
        (settings.home / "exports" / running_export / PROCESS).write_text(
            json.dumps({"pid": os.getpid(), "started_at": create_time(os.getpid())}), encoding="utf-8")
        yield Seeded(client, platform, base.json()["id"], tuned_id, ids[0], ids[1], ids[2], ids[3], export_id,
                     running_export, pending)
    platform.close()


def pages(s: Seeded) -> list[str]:
    return [
        "/console/models", "/console/models?kind=finetuned&q=qa", "/console/models/rows",
        f"/console/models/{s.tuned_id}", f"/console/models/{s.base_id}", f"/console/models/{s.tuned_id}/jobs",
        "/console/deployments", "/console/deployments/rows", f"/console/deployments/{s.failed_deployment}",
        f"/console/deployments/{s.failed_deployment}/live", "/console/chat", "/console/chat?model=qa-lora&compare=x",
        "/console/system", "/console/system/live", "/console/evaluations",
        f"/console/evaluations/{s.report_id}", f"/console/evaluations/{s.running_evaluation}",
        f"/console/evaluations/{s.report_id}/live",
    ]


def test_every_page_does_bounded_database_work_beside_1000_tasks(seeded):
    counts = statements_per_page(seeded.client, seeded.platform.db.engine, pages(seeded))
    print(f"\n{'page':60} {'statements':>10}")  # pytest -s shows the figures
    for path, n in counts.items():
        print(f"{path:60} {n:10d}")
    assert too_busy(counts) == {}


def test_the_registry_lists_base_and_fine_tuned_models(seeded):
    page = seeded.client.get("/console/models").text
    rows = {m.group(1): m.group(0) for m in re.finditer(r'<tr data-model-id="\d+" data-model-name="([^"]+)".*?</tr>',
                                                          page, re.S)}
    assert set(rows) >= {"tiny-base", "qa-lora"}
    assert 'data-kind="base"' in rows["tiny-base"] and 'data-kind="finetuned"' in rows["qa-lora"]
    assert text_of(rows["qa-lora"]).count("1.2000") == 1  # its eval loss
    assert f'href="/console/tasks/{PUBLISHED_TASK}"' in rows["qa-lora"]
    # an import shows its progress, and the list polls until it ends
    importing = text_of(rows["remote-base"])
    assert "Importing" in importing and "42.0 %" in importing and "s3://bucket/models/qwen/" in importing
    assert "every 2s" in element(page, "model-rows")
    only_tuned = seeded.client.get("/console/models?kind=finetuned").text
    assert "qa-lora" in only_tuned and 'data-model-name="tiny-base"' not in only_tuned
    # the publish dialog offers the newest completed / stopped tasks (task-00999 is the newest, completed)
    offered = re.search(r'<template id="publish-template">.*?</template>', page, re.S).group(0)
    assert '<option value="1000" data-name="task-00999" data-status="completed">' in offered
    assert 'data-status="running"' not in offered and 'data-status="failed"' not in offered


def test_a_fine_tuned_model_shows_its_lineage_evaluations_exports_and_deployments(seeded):
    html = seeded.client.get(f"/console/models/{seeded.tuned_id}").text
    lineage = html[html.index('id="model-lineage"'):html.index('id="model-jobs"')]
    assert re.search(r'data-lineage="base">bundled<', lineage)
    assert re.search(rf'<a href="/console/tasks/{PUBLISHED_TASK}" data-lineage="task">task-00001</a>', lineage)
    assert re.search(r'data-lineage="step">step 100<', lineage)
    assert re.search(r'data-lineage="dataset">identity<', lineage)
    assert re.search(r'data-metric="eval_loss">1.2<', lineage)
    assert "Training configuration" in html and '"lora_rank": 16' in html
    # the evaluations (the running one with its progress), the finished export with its files and sizes
    jobs = html[html.index('id="model-jobs"'):html.index('id="model-deployments"')]
    assert f'href="/console/evaluations/{seeded.report_id}"' in jobs and "63.0 %" in jobs
    assert "hx-trigger=\"refresh, every 2s\"" in element(html, "model-jobs")  # polls while the evaluation runs
    assert seeded.export_id in jobs and "qa-lora-q8_0.gguf" in jobs and "145.0 MB" in jobs and "538.0 MB" in jobs
    running_export = re.search(rf'data-export-id="{seeded.running_export}" data-status="running".*?</p>', jobs, re.S)
    assert running_export and "35.0 % · merge — merge 1/2: lora" in text_of(running_export.group(0))
    assert f'data-deployment-id="{seeded.failed_deployment}"' in html
    # its actions and their forms
    for action in ("deploy", "evaluate", "export", "delete-model"):
        assert f'data-action="{action}"' in html
    assert 'id="deploy-template"' in html and 'name="maxShardSizeGb"' in html and 'name="compareWithBase"' in html

    base = seeded.client.get(f"/console/models/{seeded.base_id}").text
    assert "A base model: it was registered, not trained here." in text_of(base)
    assert 'name="compareWithBase"' not in base  # nothing to compare a base model with
    assert seeded.client.get("/console/models/999").status_code == 404


def test_the_evaluation_report_shows_scores_side_by_side_and_samples(seeded):
    html = seeded.client.get(f"/console/evaluations/{seeded.report_id}").text
    assert "hx-trigger" not in element(html, "evaluation-live")  # finished: nothing to poll
    scores = html[html.index('id="evaluation-scores"'):html.index('id="best-samples"')]
    cells = dict(re.findall(r'<tr data-metric="(\w+)">(.*?)</tr>', scores, re.S))
    assert set(cells) == {"eval_loss", "perplexity", "bleu_4", "rouge_1", "rouge_2", "rouge_l"}
    assert "2.6000" in cells["eval_loss"] and "1.4000" in cells["eval_loss"]
    verdicts = {key: re.search(r'data-verdict="(\w+)"', row).group(1) for key, row in cells.items()}
    # loss and perplexity fell, BLEU / ROUGE-1 / ROUGE-L rose: better; ROUGE-2 fell: worse
    assert verdicts == {"eval_loss": "better", "perplexity": "better", "bleu_4": "better", "rouge_1": "better",
                        "rouge_2": "worse", "rouge_l": "better"}
    assert re.search(r'class="better"[^>]*data-change="-1.2"', cells["eval_loss"])
    assert "+42.36" in text_of(cells["bleu_4"]) and "-2.50" in text_of(cells["rouge_2"])

    best = html[html.index('id="best-samples"'):html.index('id="worst-samples"')]
    worst = html[html.index('id="worst-samples"'):html.index('id="baseline-samples-1"')]
    base = html[html.index('id="baseline-samples-1"'):html.index('id="all-samples"')]
    assert [int(i) for i in re.findall(r'data-sample="(\d+)"', best)] == [0, 1]  # qa-lora's best, best first
    assert [int(i) for i in re.findall(r'data-sample="(\d+)"', worst)] == [2, 1]
    assert [int(i) for i in re.findall(r'data-sample="(\d+)"', base)] == [1, 0, 2, 0]  # the base's, folded
    first = text_of(best[:best.index('data-sample="1"')])
    # the same prompt with the reference and both models' answers and scores
    assert "Who are you?" in first and "I am Forge, made by tuneforge." in first
    assert "I am an AI assistant." in first and "BLEU-4 8.10" in first and "BLEU-4 100.00" in first


def test_a_running_evaluation_shows_its_progress_and_keeps_polling(seeded):
    html = seeded.client.get(f"/console/evaluations/{seeded.running_evaluation}").text
    assert 'hx-trigger="every 2s"' in element(html, "evaluation-live")
    progress = text_of(html[html.index('id="evaluation-progress"'):])
    assert "63.0 % · generating answers" in progress and "generation 19/30" in progress
    assert 'data-action="stop-evaluation"' in html
    assert seeded.client.get("/console/evaluations/999").status_code == 404


def test_deployments_show_status_restarts_error_and_log(seeded):
    rows = seeded.client.get("/console/deployments").text
    failed = re.search(rf'<tr data-deployment-id="{seeded.failed_deployment}".*?</tr>', rows, re.S).group(0)
    assert 'data-status="failed"' in failed and 'data-restarts="3"' in failed
    assert "restarted 3 times" in text_of(failed) and 'data-action="start-deployment"' in failed
    running = re.search(rf'<tr data-deployment-id="{seeded.running_deployment}".*?</tr>', rows, re.S).group(0)
    assert 'data-action="stop-deployment"' in running and "/console/chat?model=qa-lora-chat" in running
    assert "every 10s" in element(rows, "deployment-rows")  # a running deployment is watched for a crash

    detail = seeded.client.get(f"/console/deployments/{seeded.failed_deployment}").text
    assert "hx-trigger=\"refresh\"" in element(detail, "deployment-live")  # failed: no polling
    log = re.search(r'<pre class="log" id="deployment-log"[^>]*>(.*?)</pre>', detail, re.S).group(1)
    assert unescape(log).splitlines()[-1] == "RuntimeError: out of memory"
    assert "Not answering" in text_of(detail) and '"max_batch": 4' in detail
    assert seeded.client.get("/console/deployments/999").status_code == 404


def test_chat_offers_running_deployments_and_opens_in_compare_mode(seeded):
    html = seeded.client.get("/console/chat").text
    model = re.search(r'<select id="chat-model".*?</select>', html, re.S).group(0)
    assert '<option value="qa-lora-chat" selected>' in model  # the running one, not the failed one
    assert 'value="qa-lora-live"' not in model
    assert '<option value="qa-lora">' in model  # the model's name routes to its deployment
    assert 'data-compare="false"' in html
    compare = seeded.client.get("/console/chat?model=qa-lora-chat&compare=qa-lora").text
    assert 'data-compare="true"' in compare
    second = re.search(r'<select id="chat-model-b".*?</select>', compare, re.S).group(0)
    assert '<option value="qa-lora" selected>' in second


def test_the_system_page_lists_devices_and_the_queue_in_start_order(seeded):
    html = seeded.client.get("/console/system").text
    devices = re.findall(r'<tr data-device="(\d+)" data-busy="(\w+)">', html)
    assert devices == [("0", "true")]  # one CPU slot, used by the seeded running tasks
    queue = html[html.index('id="queue-pending"'):]
    assert re.findall(r">(queued-\d)</a>", queue) == seeded.pending
    running = html[html.index('id="queue-running"'):html.index('id="queue-pending"')]
    assert len(re.findall(r"<tr data-task-id=", running)) == TASKS // 10
    assert 'hx-trigger="every 2s"' in element(html, "system-live")


def test_pages_are_in_chinese_for_a_chinese_browser(seeded):
    headers = {"Accept-Language": "zh-CN,zh;q=0.9"}
    report = seeded.client.get(f"/console/evaluations/{seeded.report_id}", headers=headers).text
    assert "评估损失" in report and "更好" in report and "更差" in report
    assert "血缘" in seeded.client.get(f"/console/models/{seeded.tuned_id}", headers=headers).text
    assert "设备清单" in seeded.client.get("/console/system", headers=headers).text


def test_the_export_dialog_offers_gptq_quantization_in_both_languages(seeded):
    labels = {"en": ("Quantization", "Calibration dataset", "Calibration samples", "Group size", "one per row"),
              "zh": ("量化", "校准数据集", "校准样本数", "分组大小", "每行一组")}
    for language, headers in (("en", {}), ("zh", {"Accept-Language": "zh-CN,zh;q=0.9"})):
        html = seeded.client.get(f"/console/models/{seeded.tuned_id}", headers=headers).text
        dialog = re.search(r'<template id="export-template">.*?</template>', html, re.S).group(0)
        bits = re.search(r'<select id="export-quantization" name="quantizationBit">(.*?)</select>', dialog, re.S)
        # "none" is the empty first option: the form leaves it out and the export is not quantized
        assert bits and re.findall(r'<option value="(\d*)">', bits.group(1)) == ["", "4", "8"]
        assert "GPTQ int4" in bits.group(1) and "GPTQ int8" in bits.group(1)
        assert re.search(r'<input[^>]*name="quantizationDataset"', dialog)
        for name, placeholder in (("quantizationNsamples", "128"), ("quantizationMaxlen", "1024")):
            field = re.search(rf'<input[^>]*name="{name}"[^>]*>', dialog).group(0)
            assert 'type="number"' in field and f'placeholder="{placeholder}"' in field and "value=" not in field
        groups = re.search(r'name="quantizationGroupSize">(.*?)</select>', dialog, re.S).group(1)
        assert re.findall(r'<option value="(-?\d*)">', groups) == ["", "32", "64", "256", "-1"]
        text = text_of(dialog)
        assert all(label in text for label in labels[language]), (language, text)
        assert "128" in text_of(groups.split("</option>")[0])  # the empty choice names the default


def test_a_quantized_export_job_shows_its_bits_and_group_size(seeded):
    exports = seeded.platform.settings.home / "exports"
    job_id = f"export-20250101-140000-{seeded.tuned_id}-000003"
    spec = ExportSpec.model_validate_json((exports / seeded.export_id / "SPEC.json").read_text(encoding="utf-8"))
    spec = spec.model_copy(update={"job_id": job_id, "gguf": None, "quantization_bit": 4,
                                   "quantization_dataset": "identity", "quantization_group_size": 64})
    (exports / job_id).mkdir()
    (exports / job_id / "SPEC.json").write_text(spec.model_dump_json(), encoding="utf-8")
    EventWriter(exports / job_id / "events.jsonl").emit(EventType.COMPLETED, output_dir=spec.output_dir,
                                                        files=["model.safetensors"],
                                                        sizes={"model.safetensors": 90_000_000})
    html = seeded.client.get(f"/console/models/{seeded.tuned_id}/jobs").text
    row = re.search(rf'data-export-id="{job_id}".*?</p>', html, re.S)
    assert row and "GPTQ int4 · g64" in text_of(row.group(0))
    finished = re.search(rf'data-export-id="{seeded.export_id}".*?</p>', html, re.S).group(0)
    assert "GGUF q8_0" in text_of(finished) and "GPTQ" not in finished  # not quantized: no GPTQ label
