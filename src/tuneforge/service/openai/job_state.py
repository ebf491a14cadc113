"""A job's OpenAI status, derived from its task's status, and the job object built from the job and task rows.

    task pending                      → queued
    task running / stopping           → running (a pause takes effect when the checkpoint is saved)
    task completed                    → succeeded once its model is published (failed if that cannot be done)
    task failed                       → failed, with the task's error
    task stopped, after a pause       → paused (resumable from the checkpoint it saved)
    task stopped, by the native API   → paused when it has a checkpoint to resume from, else cancelled
    cancel asked                      → cancelled at once (the task stops in the background)
    task deleted (native API)         → the job keeps its final status, else failed (task_deleted)

`validating_files` is never seen: files are validated while the job is created, which refuses bad ones at once."""

from __future__ import annotations

import time
from typing import Any, cast

from tuneforge.schemas.tasks import TaskStatus
from tuneforge.service.openai.views import FineTuningJobView, JobError, JobHyperparameters, JobMethod, JobStatus
from tuneforge.store import FineTuningJob, Task

FINISHED = frozenset({"succeeded", "failed", "cancelled"})
RUNNING_STATUSES = {TaskStatus.PENDING: "queued", TaskStatus.RUNNING: "running", TaskStatus.STOPPING: "running"}


def job_status(job: FineTuningJob, task: Task | None) -> str:
    if job.control == "cancel":
        return "cancelled"
    if task is None:
        return job.status if job.status in FINISHED else "failed"
    if task.status in RUNNING_STATUSES:
        return RUNNING_STATUSES[TaskStatus(task.status)]
    if task.status == TaskStatus.COMPLETED:
        return "succeeded" if job.fine_tuned_model else ("failed" if job.error else "running")
    if task.status == TaskStatus.FAILED:
        return "failed"
    resumable = job.control == "pause" or bool(task.checkpoints)
    return "paused" if resumable else "cancelled"


def job_error(job: FineTuningJob, task: Task | None, status: str) -> dict[str, Any] | None:
    """What a failed job reports: the task's error, or why its model could not be published (already on the job)."""
    if status != "failed":
        return None
    if job.error:
        return dict(job.error)
    if task is None:
        return {"code": "task_deleted", "message": "the job's tuneforge task was deleted before it finished",
                "param": None}
    return {"code": "task_failed", "message": task.error_message or "the training failed", "param": None}


def job_view(job: FineTuningJob, task: Task | None) -> FineTuningJobView:
    status = cast(JobStatus, job.status)
    running = task is not None and status == "running"
    eta = task.eta_s if running and task is not None else None
    return FineTuningJobView(
        id=job.id, created_at=int(job.created_at), error=JobError(**job.error) if job.error else None,
        fine_tuned_model=job.fine_tuned_model, finished_at=_seconds(job.finished_at),
        hyperparameters=JobHyperparameters(**{k: job.hyperparameters.get(k) for k in JobHyperparameters.model_fields}),
        model=job.model, organization_id=job.organization, result_files=[], seed=job.seed, status=status,
        trained_tokens=job.trained_tokens, training_file=job.training_file, validation_file=job.validation_file,
        estimated_finish=int(time.time() + eta) if eta is not None else None, integrations=job.integrations,
        metadata=job.job_metadata, method=JobMethod.model_validate(job.method), user_provided_suffix=job.suffix)


def _seconds(moment: float | None) -> int | None:
    return int(moment) if moment is not None else None
