"""How a Ray run's failure reaches its one final event, fast and with the right culprit.

When a worker is killed, the others see only a broken collective (a gloo / NCCL read error); Ray knows which
worker was lost, where, and why. So rank 0 holds its own failure back in a side file (FailureHeldBack), Ray Train's
controller writes what it saw into the run directory the moment the worker group fails (ReportToRunDir), and the
driver turns the best of the two into the event: the lost worker first, else rank 0's report, else Ray's error.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from ray.train import UserCallback

from tuneforge.rundir import EventWriter, RunDir
from tuneforge.schemas.events import EventType

log = logging.getLogger("tuneforge.ray")

LOST = "a Ray worker was lost"
RESUME_HINT = "resume the task: it continues from its last checkpoint"
HELD_FAILURE_FILE = "rank0-failure.json"  # rank 0's own failure report, held back for the driver
CONTROLLER_REPORT_FILE = "ray-failure.json"  # what Ray Train's controller saw fail
# How Ray says a worker's process or node is gone (ActorDiedError, NodeDiedError), as opposed to an error it raised.
LOST_SIGNS = ("The actor died", "The actor is dead", "ActorDiedError", "NodeDiedError", "node was terminated",
              "node died")
RANK_SNIPPET = re.compile(r"\[Rank (\d+) Error Snippet\]:\n(.*?)(?=\n\[Rank \d+ Error Snippet\]|\Z)", re.S)


def describe(text: str, fallback: str = "Ray Train failed") -> tuple[str, str]:
    """Ray's report as (error, hint) a user can act on: which worker was lost, where and why, not the report."""
    snippets = RANK_SNIPPET.findall(text) or [("?", text)]
    for rank, snippet in snippets:
        if any(sign in snippet for sign in LOST_SIGNS):
            pid, ip = _field(snippet, "pid"), _field(snippet, "node_ip") or _field(snippet, "ip")
            detail = (_field(snippet, "Worker exit detail", ":") or "its process died").split(". ")[0][:300]
            return f"{LOST}: rank {rank} (pid {pid} on {ip}) died — Ray: {detail}", RESUME_HINT
    rank, snippet = snippets[0]
    lines = [line.strip() for line in snippet.splitlines() if line.strip()]
    last = lines[-1] if lines else fallback  # a traceback ends with the exception itself
    who = f"rank {rank}: " if rank != "?" else ""
    return f"{fallback}: {who}{last[:400]}", f"see train.log and train.rank*.log; {RESUME_HINT}"


def _field(snippet: str, name: str, separator: str = "=") -> str | None:
    """`name=value` (or `name: value`) in Ray's report, quotes and trailing commas removed."""
    match = re.search(rf"{re.escape(name)}\s*{separator}\s*'?([^',\n]+)", snippet)
    return match.group(1).strip() if match else None


class ReportToRunDir(UserCallback):
    """Runs in Ray Train's controller: writes the workers' failures to the run directory as soon as they happen
    (the controller's own cleanup can take many seconds more before fit() returns to the driver)."""

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir

    def after_exception(self, run_context: Any, worker_exceptions: dict[int, Exception]) -> None:
        text = "\n".join(f"[Rank {rank} Error Snippet]:\n{exc}" for rank, exc in sorted(worker_exceptions.items()))
        error, hint = describe(text)
        path = Path(self.run_dir) / CONTROLLER_REPORT_FILE
        path.write_text(json.dumps({"error": error, "hint": hint}), encoding="utf-8")


def controller_report(run_dir: RunDir) -> tuple[str, str] | None:
    report = _read_json(run_dir.path / CONTROLLER_REPORT_FILE)
    return (str(report["error"]), str(report["hint"])) if "error" in report else None


class FailureHeldBack(EventWriter):
    """Rank 0's events, except a failure: that goes to a side file for the driver, which knows more."""

    def __init__(self, run_dir: RunDir) -> None:
        super().__init__(run_dir.events_file)
        self.failure_file = run_dir.path / HELD_FAILURE_FILE

    def emit(self, event_type: EventType, **fields: Any) -> dict[str, Any]:
        if event_type != EventType.FAILED:
            return super().emit(event_type, **fields)
        self.failure_file.write_text(json.dumps(fields, default=str), encoding="utf-8")
        return {"type": str(event_type), **fields}


def write_failure(run_dir: RunDir, failure: tuple[str, str] | None) -> None:
    """The run's one final event for a failure: a lost worker as Ray names it (rank 0 saw only a broken collective
    then), else rank 0's own report (its step and checkpoint too), else Ray's error."""
    held = _read_json(run_dir.path / HELD_FAILURE_FILE)
    if (failure is not None and failure[0].startswith(LOST)) or "error" not in held:
        error, hint = failure or ("the workers ended without a final report", RESUME_HINT)
        fields: dict[str, Any] = {"step": None, "checkpoint": None}
    else:
        fields = {k: v for k, v in held.items() if k not in ("error", "hint")}
        error, hint = str(held["error"]), "; ".join(filter(None, [held.get("hint"), RESUME_HINT]))
    log.error("%s — %s", error, hint)
    EventWriter(run_dir.events_file).emit(EventType.FAILED, **{**fields, "error": error, "hint": hint})


def clear_reports(run_dir: RunDir) -> None:
    """A resumed run starts without the last attempt's reports."""
    for name in (HELD_FAILURE_FILE, CONTROLLER_REPORT_FILE):
        (run_dir.path / name).unlink(missing_ok=True)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
