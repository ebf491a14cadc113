"""Bringing a job up to date with its task: its status, error and finish time, the notes of what happened (started,
paused, succeeded, failed), and its models — each checkpoint and the final output published through ModelService
under OpenAI's names, so /v1/chat/completions (and every native route) can use them.

When it runs: at the end of a task (the hook below) and whenever the job is read. The hook is a session event of
this platform's database: after a commit that moved a task to a final status (the scheduler ingesting `completed`,
a dead worker marked failed, a stop), the jobs of those tasks are synced in the committing thread. So the scheduler,
ingestion and the native task routes need no knowledge of OpenAI jobs; the sync on read covers anything the hook
missed (a server stopped between the commit and the publish, a publish that failed once)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session

from tuneforge.schemas.tasks import FINAL_STATUSES, TaskStatus
from tuneforge.service.errors import Conflict, ServiceError
from tuneforge.service.models.models import ModelService, PublishRequest
from tuneforge.service.openai.job_events import checkpoint_metrics
from tuneforge.service.openai.job_state import FINISHED, job_error, job_status
from tuneforge.service.openai.naming import base_name, fine_tuned_model_name
from tuneforge.store import Database, FineTuningJob, RegisteredModel, Task

log = logging.getLogger(__name__)
ENDED_TASKS = "tuneforge_ended_tasks"  # session.info key: tasks a flush moved to a final status


def on_task_end(db: Database, callback: Callable[[list[int]], None]) -> None:
    """Call `callback(task ids)` after each commit (through this database's sessions) that gave tasks a final
    status. It runs in the committing thread; its errors are logged, never raised into the commit."""

    def remember(session: Session, _context: Any) -> None:
        ended = {row.id for row in session.dirty if isinstance(row, Task) and _became_final(row)}
        if ended:
            session.info.setdefault(ENDED_TASKS, set()).update(ended)

    def notify(session: Session) -> None:
        ended = session.info.pop(ENDED_TASKS, None)
        if ended:
            try:
                callback(sorted(ended))
            except Exception:  # a job that cannot be synced now is synced when it is next read
                log.exception("syncing the fine-tuning jobs of tasks %s failed", sorted(ended))

    event.listen(db.sessions, "after_flush", remember)
    event.listen(db.sessions, "after_commit", notify)
    event.listen(db.sessions, "after_rollback", lambda session: session.info.pop(ENDED_TASKS, None))


def _became_final(task: Task) -> bool:
    return any(value in FINAL_STATUSES for value in inspect(task).attrs.status.history.added)


class JobSync:
    def __init__(self, db: Database, models: ModelService) -> None:
        self.db = db
        self.models = models
        self._lock = threading.Lock()  # one sync at a time: two must not publish the same model

    def tasks_ended(self, task_ids: list[int]) -> None:
        with self.db.session() as session:
            job_ids = list(session.scalars(select(FineTuningJob.id).where(FineTuningJob.task_id.in_(task_ids))))
        for job_id in job_ids:
            self.sync(job_id)

    def sync(self, job_id: str) -> None:
        with self._lock:
            with self.db.session() as session:
                job = session.get(FineTuningJob, job_id)
                if job is None or job.status in FINISHED:
                    return
                task = session.get(Task, job.task_id) if job.task_id is not None else None
                plan = _Publishing(job, task)
            published = self._publish(plan)
            with self.db.session() as session:
                job = session.get(FineTuningJob, job_id)
                task = session.get(Task, job.task_id) if job is not None and job.task_id is not None else None
                if job is not None:
                    _apply(job, task, published)

    def _publish(self, plan: _Publishing) -> _Published:
        done = _Published()
        for step, created_at in plan.checkpoints:
            name = fine_tuned_model_name(plan.base, plan.org, plan.suffix, plan.job_id, step)
            error = self._publish_one(plan, name, step)
            # a checkpoint that cannot be published (its folder deleted) is noted once, not tried on every read
            done.checkpoints.append({"step": step, "model": None if error else name, "created_at": created_at})
        if plan.final:
            name = fine_tuned_model_name(plan.base, plan.org, plan.suffix, plan.job_id)
            done.error = self._publish_one(plan, name, None)
            done.final = None if done.error else name
        return done

    def _publish_one(self, plan: _Publishing, name: str, step: int | None) -> dict[str, Any] | None:
        """Publishes one model; None when it is registered (now or by an earlier attempt), else the job's error."""
        request = PublishRequest(task_id=plan.task_id, name=name, checkpoint_step=step, owner_id=plan.owner_id,
                                 description=f"fine-tuning job {plan.job_id}")
        try:
            self.models.publish(request)
        except ServiceError as exc:
            if isinstance(exc, Conflict) and self._published_before(plan, name):
                return None
            log.warning("job %s: publishing %s failed: %s", plan.job_id, name, exc.message)
            return {"code": "publish_failed", "message": f"the trained model could not be registered as {name}: "
                                                         f"{exc.message}", "param": None}
        return None

    def _published_before(self, plan: _Publishing, name: str) -> bool:
        with self.db.session() as session:
            query = select(RegisteredModel.id).where(RegisteredModel.name == name,
                                                     RegisteredModel.task_id == plan.task_id)
            return session.scalar(query) is not None


class _Publishing:
    """What a sync publishes, read from the rows in one session and used after it."""

    def __init__(self, job: FineTuningJob, task: Task | None) -> None:
        self.job_id, self.org, self.suffix, self.owner_id = job.id, job.organization, job.suffix, job.owner_id
        self.base = base_name(job.model)
        self.task_id = task.id if task is not None else 0
        known = {entry["step"] for entry in job.checkpoint_models}
        self.checkpoints = [(c.step, c.created_at) for c in (task.checkpoints if task is not None else [])
                            if c.step not in known]
        self.final = (task is not None and task.status == TaskStatus.COMPLETED and job.control != "cancel"
                      and not job.fine_tuned_model and not job.error)


@dataclass
class _Published:
    """What a sync registered: checkpoint models ({step, model, created_at}; model None when one could not be), the
    final model's name, or the error that kept it from being registered."""

    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    final: str | None = None
    error: dict[str, Any] | None = None


def _apply(job: FineTuningJob, task: Task | None, published: _Published) -> None:
    if published.checkpoints and task is not None:
        entries = [{**entry, "metrics": checkpoint_metrics(task, entry["step"])} for entry in published.checkpoints]
        job.checkpoint_models = sorted([*job.checkpoint_models, *entries], key=lambda entry: entry["step"])
    if published.final:
        job.fine_tuned_model = published.final
    if published.error:
        job.error = published.error
    status = job_status(job, task)
    if status != job.status:
        _note_transition(job, task, status)
        job.status = status
    job.error = job_error(job, task, status)
    if status in FINISHED and job.finished_at is None:
        job.finished_at = (task.ended_at if task is not None else None) or time.time()
    if status == "succeeded" and task is not None:
        job.trained_tokens = task.tokens_trained


def _note_transition(job: FineTuningJob, task: Task | None, status: str) -> None:
    """The events a status change shows, dated by the task when it knows when."""
    ended = (task.ended_at if task is not None else None) or time.time()
    if status in ("running", "succeeded", "failed", "paused") and task is not None and task.started_at \
            and not any(n.get("kind") == "started" for n in job.notes):
        add_note(job, "Fine-tuning job started", at=task.started_at, kind="started")
    if status == "succeeded":
        add_note(job, f"New fine-tuned model created: {job.fine_tuned_model}", at=ended)
        add_note(job, "The job has successfully completed", at=ended)
    elif status == "failed":
        error = job_error(job, task, status) or {}
        add_note(job, f"Fine-tuning job failed: {error.get('message', 'unknown error')}", at=ended, level="error")
    elif status == "paused":
        add_note(job, f"Fine-tuning job paused at step {task.step if task is not None else 0}", at=ended)


def add_note(job: FineTuningJob, message: str, at: float | None = None, level: str = "info",
             kind: str = "message", data: dict[str, Any] | None = None) -> None:
    note = {"at": at or time.time(), "level": level, "message": message, "kind": kind, "data": data}
    job.notes = [*job.notes, note]
