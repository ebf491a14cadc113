"""Apply a run directory's new events to its task row, in one transaction, keyed by seq.

Ingesting the same events twice changes nothing (last_seq, and a unique (task, seq) on the metric points), so a
server that restarts simply reads on from where its database says it was."""

from __future__ import annotations

import math
import time
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneforge.rundir import RunDir, scan_events
from tuneforge.schemas.tasks import TaskStatus
from tuneforge.store import Checkpoint, MetricPoint, Task

LOG_TAIL_LINES = 20


MAX_NOTED_PROBLEMS = 20
# The stage's own figures an event may carry ("metrics": {name: number}); a run dir is hostile input like any other.
MAX_STAGE_METRICS = 32  # names kept per point
MAX_STAGE_METRIC_NAME = 64  # characters


def ingest_events(session: Session, task: Task) -> list[dict[str, Any]]:
    """New events of `task` (seq > task.last_seq) applied to it; returns them. A bad line or an event that cannot
    be applied is skipped and noted on the task (metrics.event_problems), never raised: one task's damaged file
    must not stall the queue."""
    scan = scan_events(RunDir(Path(task.run_dir)).events_file, after_seq=task.last_seq)
    for skipped in scan.skipped:
        note_event_problem(task, str(skipped))
    for event in scan.events:
        try:
            apply_event(session, task, event)
        except (KeyError, TypeError, ValueError) as exc:
            note_event_problem(task, f"event seq {event['seq']} ({event['type']}) could not be applied: {exc!r}; "
                                     "skipped")
        task.last_seq = event["seq"]
    return scan.events


def note_event_problem(task: Task, problem: str) -> None:
    noted = list((task.metrics or {}).get("event_problems") or [])
    if problem not in noted and len(noted) < MAX_NOTED_PROBLEMS:
        task.metrics = {**(task.metrics or {}), "event_problems": [*noted, problem]}


def apply_event(session: Session, task: Task, event: dict[str, Any]) -> None:
    kind = event["type"]
    if kind == "started":
        _started(task, event)
    elif kind == "progress":
        _progress(session, task, event)
    elif kind == "eval":
        _eval(session, task, event)
    elif kind == "checkpoint":
        _checkpoint(session, task, event)
    elif kind in ("completed", "failed", "stopped"):
        _final(task, event)


def _started(task: Task, event: dict[str, Any]) -> None:
    if task.status == TaskStatus.PENDING:
        task.status = TaskStatus.RUNNING
    task.total_steps = event.get("total_steps") or task.total_steps
    keys = ("num_train_samples", "num_eval_samples", "trainable_params", "total_params", "device", "precision")
    task.metrics = {**task.metrics, **{k: event[k] for k in keys if event.get(k) is not None}}


def _progress(session: Session, task: Task, event: dict[str, Any]) -> None:
    task.step = event.get("step", task.step)
    task.total_steps = event.get("total_steps") or task.total_steps
    task.epoch = event.get("epoch")
    task.loss = event.get("loss") if event.get("loss") is not None else task.loss
    task.tokens_trained = event.get("tokens_seen") or task.tokens_trained
    task.tokens_per_second = event.get("tokens_per_second")
    task.eta_s = event.get("eta_s")
    if task.total_steps:
        task.progress = round(min(100.0, 100.0 * task.step / task.total_steps), 2)
    task.metrics = {**task.metrics, "loss": task.loss, "loss_tokens": event.get("trained_tokens"),
                    "learning_rate": event.get("learning_rate")}
    if not _seen(session, task, event["seq"]):
        session.add(MetricPoint(task_id=task.id, seq=event["seq"], kind="train", step=task.step, epoch=task.epoch,
                                loss=event.get("loss"), learning_rate=event.get("learning_rate"),
                                grad_norm=event.get("grad_norm"), tokens=event.get("tokens_seen"),
                                extra=stage_metrics(event.get("metrics")), time=event["time"]))


def _eval(session: Session, task: Task, event: dict[str, Any]) -> None:
    task.metrics = {**task.metrics, "eval_loss": event.get("eval_loss"), "perplexity": event.get("perplexity")}
    if not _seen(session, task, event["seq"]):
        session.add(MetricPoint(task_id=task.id, seq=event["seq"], kind="eval", step=event.get("step") or 0,
                                epoch=event.get("epoch"), eval_loss=event.get("eval_loss"),
                                extra=stage_metrics(event.get("metrics")), time=event["time"]))


def stage_metrics(reported: Any) -> dict[str, float] | None:
    """The stage's figures of an event (TRL's log names: rewards/margins, kl, reward, …) as {name: float}: only
    finite numbers under names of at most MAX_STAGE_METRIC_NAME characters, the first MAX_STAGE_METRICS of them;
    anything else in the field is dropped, never an error. None when nothing usable is left."""
    if not isinstance(reported, dict):
        return None
    kept: dict[str, float] = {}
    for name, value in islice(reported.items(), 4 * MAX_STAGE_METRICS):
        number = finite_number(value)
        if isinstance(name, str) and 0 < len(name) <= MAX_STAGE_METRIC_NAME and number is not None:
            kept[name] = number
            if len(kept) == MAX_STAGE_METRICS:
                break
    return kept or None


def finite_number(value: Any) -> float | None:
    """A JSON number as a finite float; None for anything else (NaN, ±Infinity, 1e999, true / false, text)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer literal too large for a float
        return None
    return number if math.isfinite(number) else None


def _checkpoint(session: Session, task: Task, event: dict[str, Any]) -> None:
    step = int(event["step"])
    existing = session.scalar(select(Checkpoint).where(Checkpoint.task_id == task.id, Checkpoint.step == step))
    if existing is None:
        session.add(Checkpoint(task_id=task.id, step=step, path=str(event["path"]), created_at=event["time"]))
    else:  # a resumed run saved the same step again
        existing.path, existing.created_at = str(event["path"]), event["time"]
    task.step = max(task.step, step)


def _final(task: Task, event: dict[str, Any]) -> None:
    kind = event["type"]
    task.status = TaskStatus(kind)
    task.ended_at = event["time"]
    task.eta_s = 0.0 if kind == "completed" else None
    if event.get("step") is not None:
        task.step = event["step"]
    if kind == "completed":
        task.progress = 100.0
        task.metrics = {**task.metrics, **(event.get("metrics") or {})}
        task.error_message = None
    elif kind == "failed":
        hint = f"\nWhat to do: {event['hint']}" if event.get("hint") else ""
        task.error_message = f"{event.get('error')}{hint}"
    else:
        task.error_message = None


def _seen(session: Session, task: Task, seq: int) -> bool:
    query = select(MetricPoint.id).where(MetricPoint.task_id == task.id, MetricPoint.seq == seq)
    return session.scalar(query) is not None


def mark_worker_lost(task: Task, exit_code: int | None, reason: str) -> None:
    """The worker ended without a final event: the task failed (or, if a stop was asked, stopped)."""
    tail = "\n".join(RunDir(Path(task.run_dir)).tail_log(LOG_TAIL_LINES) + _rank_log_tails(task)
                     + _worker_output_tail(task))
    code = "unknown (the worker was re-attached after a server restart)" if exit_code is None else str(exit_code)
    task.exit_code = exit_code
    task.ended_at = time.time()
    task.eta_s = None
    if task.stop_requested_at is not None:
        task.status = TaskStatus.STOPPED
        task.error_message = f"the worker did not stop in time and was killed ({reason}); no checkpoint was saved"
        return
    task.status = TaskStatus.FAILED
    problems = (task.metrics or {}).get("event_problems") or []
    damaged = "\nIts events.jsonl was damaged: " + "; ".join(problems) if problems else ""
    task.error_message = (f"the worker exited with code {code} without reporting an outcome ({reason}).{damaged}\n"
                          f"Last log lines:\n{tail or '(the log is empty)'}")


def _rank_log_tails(task: Task, lines: int = 5) -> list[str]:
    """Under torchrun another rank may hold the real cause (rank 0 only sees its peer vanish)."""
    tails = []
    for path in sorted(Path(task.run_dir).glob("train.rank*.log")):
        tails += [f"--- {path.name} ---", *_tail(path, lines)]
    return tails


def _tail(path: Path, lines: int) -> list[str]:
    with path.open("rb") as f:
        f.seek(0, 2)
        f.seek(max(0, f.tell() - 16 * 1024))
        return f.read().decode("utf-8", errors="replace").splitlines()[-lines:]


def _worker_output_tail(task: Task, lines: int = 10) -> list[str]:
    """stdout/stderr of the worker: holds what happened before train.log existed (e.g. an import error)."""
    path = Path(task.run_dir) / "worker.out"
    if not path.is_file():
        return []
    text = _tail(path, lines)
    return ["--- worker output ---", *text] if text else []
