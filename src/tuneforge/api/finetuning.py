"""Seed 003's task API, verbatim paths: /finetuning/createTask, deleteTask, stopTask, getTask, getTaskList,
getTaskLog, and in the same style copyTask, resumeTask, getTaskMetrics, getTaskCheckpoints, estimateTask,
streamTask (Server-Sent Events)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.sse import EventSourceResponse, ServerSentEvent

from tuneforge.api.requests import CopyTaskBody, CreateTaskBody, TaskIdBody
from tuneforge.schemas import ConfigProblem
from tuneforge.schemas.tasks import FINAL_STATUSES
from tuneforge.service.errors import InvalidInput
from tuneforge.service.tasks.planning import TaskRequest
from tuneforge.service.views import LogChunk, MetricSeries, TaskDetail

router = APIRouter(prefix="/finetuning", tags=["finetuning"])


def _platform(request: Request) -> Any:
    return request.app.state.platform


def _task_request(body: CreateTaskBody) -> TaskRequest:
    return TaskRequest(name=body.name, description=body.description, owner_id=body.owner_id,
                       base_model=body.base_model, dataset_path=body.dataset_path, output_path=body.output_path,
                       training_args=body.training_args, gpu_config=body.gpu_config,
                       experiment_id=body.experiment_id, datasets=body.datasets)


def _task_id(query_id: int | None, body: TaskIdBody | None) -> int:
    task_id = query_id if query_id is not None else (body.id if body else None)
    if task_id is None:
        raise InvalidInput.of([ConfigProblem("id", "is required: ?id=N or a JSON body {\"id\": N}")])
    return task_id


@router.post("/createTask", response_model=TaskDetail, status_code=201,
             summary="Create a fine-tuning task (validated before any compute is spent; then pending)")
def create_task(request: Request, body: CreateTaskBody) -> TaskDetail:
    return _platform(request).tasks.create(_task_request(body))


@router.post("/estimateTask", summary="Resolve 'auto' values and estimate memory and time, without creating")
def estimate_task(request: Request, body: CreateTaskBody) -> dict[str, Any]:
    return _platform(request).tasks.estimate(_task_request(body))


@router.get("/getTaskList", summary="Tasks, newest first; filter by status (comma-separated), owner, name")
def get_task_list(request: Request, status: str | None = None, owner_id: int | None = Query(None, alias="ownerId"),
                  name: str | None = None, experiment_id: int | None = Query(None, alias="experimentId"),
                  page: int = 1, page_size: int = Query(20, alias="pageSize")) -> dict[str, Any]:
    result = _platform(request).tasks.list(status, owner_id, name, experiment_id, page, page_size)
    return {"total": result["total"], "page": page, "pageSize": page_size,
            "items": [_camel(item) for item in result["items"]]}


@router.get("/getTask", response_model=TaskDetail, summary="One task: status, progress, metrics, config, checkpoints")
def get_task(request: Request, id: int) -> TaskDetail:
    return _platform(request).tasks.get(id)


@router.get("/getTaskLog", response_model=LogChunk,
            summary="train.log: the last lines (tail=N), or from a byte offset (follow with nextOffset)")
def get_task_log(request: Request, id: int, offset: int | None = None, tail: int | None = None) -> LogChunk:
    return _platform(request).tasks.log(id, offset, tail)


@router.get("/getTaskMetrics", response_model=MetricSeries, summary="loss / eval_loss / learning-rate series")
def get_task_metrics(request: Request, id: int) -> MetricSeries:
    return _platform(request).tasks.metrics(id)


@router.get("/getTaskCheckpoints", summary="Checkpoints saved so far (step, path)")
def get_task_checkpoints(request: Request, id: int) -> list[dict[str, Any]]:
    return _platform(request).tasks.checkpoints(id)


@router.post("/stopTask", response_model=TaskDetail,
             summary="Stop gracefully: the worker finishes its step and saves a checkpoint (stopping → stopped)")
def stop_task(request: Request, id: int | None = None, body: TaskIdBody | None = Body(None)) -> TaskDetail:
    return _platform(request).tasks.stop(_task_id(id, body))


@router.delete("/deleteTask", summary="Delete a task and its logs; a running task is stopped first; the output "
               "model files are kept")
def delete_task(request: Request, id: int | None = None, body: TaskIdBody | None = Body(None)) -> dict[str, Any]:
    return _platform(request).tasks.delete(_task_id(id, body))


@router.post("/copyTask", response_model=TaskDetail, status_code=201,
             summary="A new task with the same parameters and a new name")
def copy_task(request: Request, body: CopyTaskBody) -> TaskDetail:
    return _platform(request).tasks.copy(body.id, body.name, body.training_args)


@router.post("/resumeTask", response_model=TaskDetail,
             summary="A stopped or failed task continues from its last checkpoint")
def resume_task(request: Request, id: int | None = None, body: TaskIdBody | None = Body(None)) -> TaskDetail:
    return _platform(request).tasks.resume(_task_id(id, body))


@router.get("/streamTask", response_class=EventSourceResponse,
            summary="Live updates (Server-Sent Events): `task` (progress), `log` (new lines), `end`")
async def stream_task(request: Request, id: int, offset: int | None = None) -> AsyncIterator[ServerSentEvent]:
    tasks = _platform(request).tasks
    detail = await run_in_threadpool(tasks.get, id)
    chunk = await run_in_threadpool(tasks.log, id, offset, None if offset is not None else 50)
    offset, last = chunk.next_offset, None
    if chunk.lines:
        yield ServerSentEvent(event="log", data={"lines": chunk.lines, "nextOffset": offset})
    while not await request.is_disconnected():
        detail = await run_in_threadpool(tasks.get, id)
        summary = _camel(detail.model_dump(by_alias=False, exclude={"training_args", "checkpoints", "estimate"}))
        if summary != last:
            yield ServerSentEvent(event="task", data=summary)
            last = summary
        chunk = await run_in_threadpool(tasks.log, id, offset)
        if chunk.lines:
            offset = chunk.next_offset
            yield ServerSentEvent(event="log", data={"lines": chunk.lines, "nextOffset": offset})
        if detail.status in FINAL_STATUSES and not chunk.lines:
            yield ServerSentEvent(event="end", data={"status": detail.status})
            return
        await asyncio.sleep(0.5)


def _camel(item: dict[str, Any]) -> dict[str, Any]:
    from pydantic.alias_generators import to_camel

    return {to_camel(k): v for k, v in item.items()}
