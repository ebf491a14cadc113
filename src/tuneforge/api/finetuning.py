"""The native task API: /finetuning/createTask, deleteTask, stopTask, getTask, getTaskList, getTaskLog, and in the
same style copyTask, resumeTask, getTaskMetrics, getTaskSamples, getTaskCheckpoints, estimateTask, streamTask
(Server-Sent Events)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.sse import EventSourceResponse, ServerSentEvent

from tuneforge.api.deps import TasksDep
from tuneforge.api.errors import ERROR_RESPONSES
from tuneforge.api.requests import CopyTaskBody, CreateTaskBody, TaskIdBody, check_training_args, required_id
from tuneforge.schemas.tasks import FINAL_STATUSES
from tuneforge.service.tasks.planning import TaskRequest
from tuneforge.service.views import (
    CheckpointFile,
    LogChunk,
    MetricSeries,
    TaskDeleted,
    TaskDetail,
    TaskEstimate,
    TaskList,
    TaskSamples,
    TaskSummary,
)

router = APIRouter(prefix="/finetuning", tags=["finetuning"])
# What a `task` event of streamTask leaves out of the task: the bulky parts that do not change while it trains.
STREAM_EXCLUDED = {"training_args", "checkpoints", "estimate"}


def _task_request(body: CreateTaskBody) -> TaskRequest:
    check_training_args(body.training_args)
    return TaskRequest(name=body.name, description=body.description, owner_id=body.owner_id,
                       base_model=body.base_model, dataset_path=body.dataset_path, output_path=body.output_path,
                       training_args=body.training_args, gpu_config=body.gpu_config,
                       experiment_id=body.experiment_id, datasets=body.datasets)


@router.post("/createTask", response_model=TaskDetail, status_code=201,
             summary="Create a fine-tuning task (validated before any compute is spent; then pending)")
def create_task(tasks: TasksDep, body: CreateTaskBody) -> TaskDetail:
    return tasks.create(_task_request(body))


@router.post("/estimateTask", response_model=TaskEstimate,
             summary="Resolve 'auto' values and estimate memory and time, without creating")
def estimate_task(tasks: TasksDep, body: CreateTaskBody) -> TaskEstimate:
    return tasks.estimate(_task_request(body))


@router.get("/getTaskList", response_model=TaskList,
            summary="Tasks, newest first; filter by status (comma-separated), owner, name")
def get_task_list(tasks: TasksDep, status: str | None = None, owner_id: int | None = Query(None, alias="ownerId"),
                  name: str | None = None, experiment_id: int | None = Query(None, alias="experimentId"),
                  page: int = 1, page_size: int = Query(20, alias="pageSize")) -> TaskList:
    result = tasks.list(status, owner_id, name, experiment_id, page, page_size)
    return TaskList(total=result["total"], page=page, page_size=page_size,
                    items=[TaskSummary.model_validate(item) for item in result["items"]])


@router.get("/getTask", response_model=TaskDetail, summary="One task: status, progress, metrics, config, checkpoints")
def get_task(tasks: TasksDep, id: int) -> TaskDetail:
    return tasks.get(id)


@router.get("/getTaskLog", response_model=LogChunk,
            summary="train.log: the last lines (tail=N), or from a byte offset (follow with nextOffset)")
def get_task_log(tasks: TasksDep, id: int, offset: int | None = Query(None, ge=0),
                 tail: int | None = Query(None, ge=1, le=100_000)) -> LogChunk:
    return tasks.log(id, offset, tail)


@router.get("/getTaskMetrics", response_model=MetricSeries,
            summary="loss / eval_loss / learning-rate series, and the stage's own figures (rewards/margins, kl, …)")
def get_task_metrics(tasks: TasksDep, id: int) -> MetricSeries:
    return tasks.metrics(id)


@router.get("/getTaskSamples", response_model=TaskSamples,
            summary="GRPO / PPO completions sampled at a step (default: the last step with any), with their reward "
            "and each grader's score and reason, and the steps that have samples")
def get_task_samples(tasks: TasksDep, id: int, step: int | None = Query(None, ge=0)) -> TaskSamples:
    return tasks.samples(id, step)


@router.get("/getTaskCheckpoints", response_model=list[CheckpointFile],
            summary="Checkpoints saved so far (step, path)")
def get_task_checkpoints(tasks: TasksDep, id: int) -> list[CheckpointFile]:
    return tasks.checkpoints(id)


@router.post("/stopTask", response_model=TaskDetail,
             summary="Stop gracefully: the worker finishes its step and saves a checkpoint (stopping → stopped)")
def stop_task(tasks: TasksDep, id: int | None = None, body: TaskIdBody | None = Body(None)) -> TaskDetail:
    return tasks.stop(required_id(id, body))


@router.delete("/deleteTask", response_model=TaskDeleted,
               summary="Delete a task and its logs; a running task is stopped first; the output model files are kept")
def delete_task(tasks: TasksDep, id: int | None = None, body: TaskIdBody | None = Body(None)) -> TaskDeleted:
    return tasks.delete(required_id(id, body))


@router.post("/copyTask", response_model=TaskDetail, status_code=201,
             summary="A new task with the same parameters and a new name")
def copy_task(tasks: TasksDep, body: CopyTaskBody) -> TaskDetail:
    check_training_args(body.training_args)
    return tasks.copy(body.id, body.name, body.training_args)


@router.post("/resumeTask", response_model=TaskDetail,
             summary="A stopped or failed task continues from its last checkpoint")
def resume_task(tasks: TasksDep, id: int | None = None, body: TaskIdBody | None = Body(None)) -> TaskDetail:
    return tasks.resume(required_id(id, body))


def _existing_task(tasks: TasksDep, id: int) -> int:
    """Runs before the stream starts, so a missing task is a 404 rather than a 200 with an empty stream."""
    tasks.get(id)
    return id


# Errors come before the stream starts, as JSON: without this, OpenAPI would file them under text/event-stream.
JSON_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": about["description"],
             "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
    for status, about in ERROR_RESPONSES.items()}


@router.get("/streamTask", response_class=EventSourceResponse, responses=JSON_ERRORS,
            summary="Live updates (Server-Sent Events): `task` (progress), `log` (new lines), `end`")
async def stream_task(request: Request, tasks: TasksDep, id: Annotated[int, Depends(_existing_task)],
                      offset: int | None = Query(None, ge=0)) -> AsyncIterator[ServerSentEvent]:
    detail = await run_in_threadpool(tasks.get, id)
    chunk = await run_in_threadpool(tasks.log, id, offset, None if offset is not None else 50)
    offset, last = chunk.next_offset, None
    if chunk.lines:
        yield ServerSentEvent(event="log", data={"lines": chunk.lines, "nextOffset": offset})
    while not await request.is_disconnected():
        detail = await run_in_threadpool(tasks.get, id)
        summary = detail.model_dump(by_alias=True, exclude=STREAM_EXCLUDED)
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
