"""OpenAI's Files API with the official `openai` client against a live server: upload, list (cursor pages), retrieve,
download, delete; a bad file comes back with status `error` and the line at fault; a refused upload is a 4xx in
OpenAI's error shape; and a processed file trains, as the managed dataset `file-…@v1`, in a task."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import openai
import pytest

from tests.fixtures.live_server import live_server
from tests.integration.service.conftest import QA, service_settings, task_body, wait_for
from tuneforge.service.errors import InvalidInput, NotFound


def _jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def _chat(question: str, answer: str) -> dict:
    return {"messages": [{"role": "developer", "content": "Answer briefly."}, {"role": "user", "content": question},
                         {"role": "assistant", "content": answer}]}


CHAT = [_chat(question, answer) for question, answer in QA]
# A second turn whose first answer is context only (weight 0): the engine must mask it, not choke on it.
WEIGHTED = {"messages": [{"role": "user", "content": QA[0][0]}, {"role": "assistant", "content": "No.", "weight": 0},
                         {"role": "user", "content": QA[1][0]}, {"role": "assistant", "content": QA[1][1]}]}


def _clients(url: str) -> tuple[openai.OpenAI, httpx.Client]:
    """The official client and a native one, with the key live_server hands to clients in this process."""
    key = os.environ.get("TUNEFORGE_API_KEY")
    native = httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {key}"} if key else {})
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key or "unused", max_retries=0, timeout=60), native


def test_files_round_trip_with_the_openai_client(tmp_path: Path, tiny_model_dir: Path, database_url: str) -> None:
    settings = service_settings(tmp_path, tiny_model_dir, database_url, max_file_bytes=4096)
    with live_server(settings, run_scheduler=False) as (url, platform):
        client, native = _clients(url)
        content = _jsonl(CHAT)
        created = client.files.create(file=("qa.jsonl", content), purpose="fine-tune")
        assert (created.object, created.status, created.purpose) == ("file", "processed", "fine-tune")
        assert created.filename == "qa.jsonl" and created.bytes == len(content)
        assert created.id.startswith("file-") and created.status_details is None
        assert client.files.retrieve(created.id) == created
        assert client.files.content(created.id).content == content
        datasets = native.get("/datasets/getDatasetList").json()["items"]
        assert [(d["name"], d["status"], d["purpose"]) for d in datasets] == [(created.id, "valid", "sft")]

        others = [client.files.create(file=(f"more-{n}.jsonl", _jsonl(CHAT[:2])), purpose="fine-tune") for n in (1, 2)]
        every = [created.id, *(f.id for f in others)]
        page = client.files.list(limit=2)
        assert len(page.data) == 2 and page.has_more
        assert [f.id for f in page] == every[::-1]  # the client follows `after` across pages, newest first
        assert [f.id for f in client.files.list(order="asc", purpose="fine-tune")] == every
        assert client.files.list(purpose="batch").data == []

        bad = _jsonl([CHAT[0], {"messages": [{"role": "user", "content": "q"},
                                             {"role": "assistant", "content": "a", "weight": 2}]}])
        failed = client.files.create(file=("bad.jsonl", bad), purpose="fine-tune")
        assert failed.status == "error"
        assert "line 2: messages[1].weight" in (failed.status_details or "")
        with pytest.raises(InvalidInput) as refused:  # what a fine-tuning job is told about it
            platform.files.training_source(failed.id, "validation_file")  # type: ignore[attr-defined]
        assert refused.value.details[0]["field"] == "validation_file"
        assert "line 2: messages[1].weight" in refused.value.message
        with pytest.raises(NotFound) as unknown:
            platform.files.training_source("file-" + "0" * 24, "training_file")  # type: ignore[attr-defined]
        assert unknown.value.details[0]["field"] == "training_file"

        assert client.files.delete(created.id).deleted
        with pytest.raises(openai.NotFoundError) as missing:
            client.files.retrieve(created.id)
        assert missing.value.param == "file_id"
        assert created.id not in [d["name"] for d in native.get("/datasets/getDatasetList").json()["items"]]


def test_refused_uploads_say_why_in_openai_s_shape(tmp_path: Path, tiny_model_dir: Path, database_url: str) -> None:
    settings = service_settings(tmp_path, tiny_model_dir, database_url, max_file_bytes=4096)
    with live_server(settings, run_scheduler=False) as (url, _):
        client, _ = _clients(url)
        with pytest.raises(openai.BadRequestError) as purpose:
            client.files.create(file=("qa.jsonl", _jsonl(CHAT)), purpose="assistants")
        assert purpose.value.param == "purpose" and "fine-tune files only" in purpose.value.message
        with pytest.raises(openai.BadRequestError) as suffix:
            client.files.create(file=("qa.txt", _jsonl(CHAT)), purpose="fine-tune")
        assert suffix.value.param == "file" and ".jsonl" in suffix.value.message
        with pytest.raises(openai.BadRequestError) as expiring:
            client.files.create(file=("qa.jsonl", _jsonl(CHAT)), purpose="fine-tune",
                                expires_after={"anchor": "created_at", "seconds": 3600})
        assert expiring.value.param == "expires_after"
        with pytest.raises(openai.APIStatusError) as large:
            client.files.create(file=("big.jsonl", _jsonl(CHAT * 20)), purpose="fine-tune")
        assert large.value.status_code == 413 and large.value.param == "file"
        with pytest.raises(openai.BadRequestError) as limit:
            client.files.list(limit=0)
        assert limit.value.param == "limit"
        assert client.files.list().data == []  # nothing refused was kept
        assert not any((settings.home / "files").glob("*"))


def test_a_processed_file_trains_in_a_task(tmp_path: Path, tiny_model_dir: Path, database_url: str) -> None:
    """The interface a fine-tuning job uses (FileService.training_source) names a dataset a task completes on; the
    dataset outlives the file while a task names it."""
    with live_server(service_settings(tmp_path, tiny_model_dir, database_url)) as (url, platform):
        client, native = _clients(url)
        uploaded = client.files.create(file=("qa.jsonl", _jsonl([*CHAT * 3, WEIGHTED])), purpose="fine-tune")
        assert uploaded.status == "processed", uploaded.status_details
        source = platform.files.training_source(uploaded.id, "training_file")  # type: ignore[attr-defined]
        assert (source.format, source.dataset_ref, source.lines) == ("chat", f"{uploaded.id}@v1", 13)
        body = task_body("from-openai-file", tiny_model_dir, source.dataset_ref, max_steps=2, save_steps=100)
        task = native.post("/finetuning/createTask", json=body)
        assert task.status_code == 201, task.text
        done = wait_for(native, task.json()["id"], {"completed", "failed"})  # type: ignore[arg-type]
        assert done["status"] == "completed", done["errorMessage"]
        assert done["metrics"]["num_train_samples"] == 13

        assert client.files.delete(uploaded.id).deleted
        names = [d["name"] for d in native.get("/datasets/getDatasetList").json()["items"]]
        assert names == [uploaded.id]  # kept: the task names file-…@v1
