"""A job's events, as OpenAI lists them (newest first): the job's own notes (created, files validated, started,
paused, resumed, cancelled, succeeded, failed), one `metrics` event per logged training step from the task's stored
metric points, and one message per saved checkpoint.

Validation losses: tuneforge evaluates the whole validation file, so an evaluation at a step is both OpenAI's
`valid_loss` (its per-batch figure) and `full_valid_loss`; a step without one carries neither."""

from __future__ import annotations

from typing import Any

from tuneforge.service.openai.naming import event_id
from tuneforge.service.openai.views import JobEvent
from tuneforge.store import FineTuningJob, MetricPoint, Task

TOKEN_ACCURACY = "mean_token_accuracy"  # TRL's log name, when the stage reports it
REWARD = "reward"  # a reinforcement stage's mean reward (GRPO), reported as OpenAI's train_reward_mean


def job_events(job: FineTuningJob, task: Task | None) -> list[JobEvent]:
    """Every event of the job, newest first (call inside the session that loaded the rows)."""
    dated: list[tuple[float, JobEvent]] = []
    for index, note in enumerate(job.notes):
        dated.append((note["at"], JobEvent(id=event_id(job.id, "n", index), created_at=int(note["at"]),
                                           level=note["level"], message=note["message"], data=note.get("data"))))
    if task is not None:
        dated += _metric_events(job.id, task)
    dated += _checkpoint_events(job)
    dated.sort(key=lambda pair: pair[0])  # stable: same-time events keep their order
    return [event for _, event in reversed(dated)]


def _metric_events(job_id: str, task: Task) -> list[tuple[float, JobEvent]]:
    evals = {p.step: p for p in task.points if p.kind == "eval" and p.eval_loss is not None}
    trained = {p.step for p in task.points if p.kind == "train"}
    events = []
    for point in task.points:
        alone = point.kind == "eval" and point.step not in trained and evals.get(point.step) is point
        if point.kind == "train" or alone:  # an evaluation at a logged step is part of that step's event
            data = _step_data(point, evals.get(point.step), task.total_steps)
            events.append((point.time, JobEvent(id=event_id(job_id, "m", point.seq), created_at=int(point.time),
                                                level="info", message=_step_message(data), data=data,
                                                type="metrics")))
    return events


def _step_data(point: MetricPoint, evaluation: MetricPoint | None, total_steps: int | None) -> dict[str, Any]:
    data: dict[str, Any] = {"step": point.step, "total_steps": total_steps}
    if point.kind == "train":
        data["train_loss"] = point.loss
        extra = point.extra or {}
        if TOKEN_ACCURACY in extra:
            data["train_mean_token_accuracy"] = extra[TOKEN_ACCURACY]
        if REWARD in extra:
            data["train_reward_mean"] = extra[REWARD]
    if evaluation is not None:
        data["valid_loss"] = data["full_valid_loss"] = evaluation.eval_loss
    return data


def _step_message(data: dict[str, Any]) -> str:
    total = f"/{data['total_steps']}" if data.get("total_steps") else ""
    figures = [f"{label}={data[key]:.4f}" for key, label in (("train_loss", "training loss"),
                                                           ("valid_loss", "validation loss"))
               if data.get(key) is not None]
    return f"Step {data['step']}{total}: {', '.join(figures) or 'no loss logged'}"


def _checkpoint_events(job: FineTuningJob) -> list[tuple[float, JobEvent]]:
    events = []
    for entry in job.checkpoint_models:
        model = f" with Snapshot ID: {entry['model']}" if entry.get("model") else ""
        events.append((entry["created_at"], JobEvent(
            id=event_id(job.id, "c", entry["step"]), created_at=int(entry["created_at"]), level="info",
            message=f"Checkpoint created at step {entry['step']}{model}", data={"step": entry["step"]})))
    return events


def checkpoint_metrics(task: Task, step: int) -> dict[str, Any]:
    """OpenAI's checkpoint metrics at `step`: the latest training loss and validation loss up to it."""
    train = [p for p in task.points if p.kind == "train" and p.step <= step and p.loss is not None]
    evals = [p for p in task.points if p.kind == "eval" and p.step <= step and p.eval_loss is not None]
    metrics: dict[str, Any] = {"step": step}
    if train:
        metrics["train_loss"] = train[-1].loss
        if train[-1].extra and TOKEN_ACCURACY in train[-1].extra:
            metrics["train_mean_token_accuracy"] = train[-1].extra[TOKEN_ACCURACY]
    if evals:
        metrics["valid_loss"] = evals[-1].eval_loss
        if evals[-1].step == step:
            metrics["full_valid_loss"] = evals[-1].eval_loss
    return metrics
