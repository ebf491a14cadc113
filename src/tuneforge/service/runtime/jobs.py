"""Background jobs that are not training tasks (export, evaluation): `python -m <module> SPEC.json` in a job folder,
in its own process group so it outlives a server restart; progress is read back from the folder's events.jsonl.

Every job is followed the same way, by this server or a restarted one: a job with a final event is over; one
without a final event runs while its process does (this server's child, or the process recorded in the folder
found again by pid and start time); one whose process is gone without a final event failed, and its last output
says why."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tuneforge.rundir import final_event, read_events
from tuneforge.service.runtime.processes import create_time, file_tail, is_same_process

log = logging.getLogger(__name__)
SPEC = "SPEC.json"
# Why a background job (validation, import) that was running when the server stopped is failed at the next start:
# it is never re-run on its own, since a job that crashed the server would crash it again at every start.
INTERRUPTED_BY_RESTART = "interrupted by a server restart"
OUTPUT = "job.out"
PROCESS = "process.json"  # the job's pid and start time, for a server that did not start it


def launch_job(module: str, folder: Path, python: str = sys.executable,
               env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start the job on folder/SPEC.json (`env`: None inherits the server's); stdout and stderr go to folder/job.out,
    and folder/process.json records the process."""
    with (folder / OUTPUT).open("ab") as out:
        child = subprocess.Popen([python, "-m", module, str(folder / SPEC)], stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    record = {"pid": child.pid, "started_at": create_time(child.pid)}
    (folder / PROCESS).write_text(json.dumps(record), encoding="utf-8")
    return child


def recorded_process(folder: Path) -> tuple[int | None, float | None]:
    """(pid, start time) from folder/process.json; (None, None) when there is none or it is unreadable."""
    try:
        record = json.loads((folder / PROCESS).read_text(encoding="utf-8"))
        return int(record["pid"]), (float(record["started_at"]) if record.get("started_at") is not None else None)
    except (OSError, ValueError, TypeError, KeyError):
        return None, None


def is_running(child: subprocess.Popen[bytes] | None, pid: int | None, started_at: float | None) -> bool:
    """This server's child by its exit status, else the process by pid and start time (a reused pid is not ours)."""
    if child is not None:
        return child.poll() is None
    return pid is not None and pid > 0 and is_same_process(pid, started_at)


@dataclass
class JobProgress:
    status: str  # running | completed | failed | stopped
    stage: str | None
    percentage: float
    message: str | None
    final: dict[str, Any] | None


def read_progress(folder: Path) -> JobProgress:
    """The job's state as its events say; a job with no final event counts as running (the caller checks its pid)."""
    events = read_events(folder / "events.jsonl")
    final = final_event(folder / "events.jsonl")
    progress = next((e for e in reversed(events) if e["type"] == "progress"), None) or {}
    status = final["type"] if final else "running"
    percentage = 100.0 if status == "completed" else float(progress.get("percentage", 0.0))
    return JobProgress(status, progress.get("stage"), percentage, progress.get("message"), final)


def follow_job(folder: Path, running: Callable[[], bool]) -> JobProgress:
    """The job's state: as read_progress, except that a job with no final event whose process is gone is `failed`
    (its `final` stays None; ended_without_result says why)."""
    progress = read_progress(folder)
    if progress.final is None and not running():
        progress = read_progress(folder)  # it may have written its result and exited since the first read
        if progress.final is None:
            return replace(progress, status="failed")
    return progress


def ended_without_result(job: str, folder: Path) -> str:
    return f"the {job} process ended without a result; its last output:\n{file_tail(folder / OUTPUT)}"


def watch_in_background(name: str, interval: float, watch: Callable[[], None],
                        stop: threading.Event) -> threading.Thread:
    """Call `watch` every `interval` seconds on a daemon thread until `stop` is set; a failed pass is logged and the
    next one runs."""

    def loop() -> None:
        while not stop.wait(interval):
            try:
                watch()
            except Exception:  # keep following the other jobs
                log.exception("%s: a watch pass failed", name)

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    return thread
