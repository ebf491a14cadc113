"""Background jobs that are not training tasks (export, evaluation): `python -m <module> SPEC.json` in a job folder,
in its own process group so it outlives a server restart; progress is read back from the folder's events.jsonl."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneforge.rundir import final_event, read_events

SPEC = "SPEC.json"
# Why a background job (validation, import) that was running when the server stopped is failed at the next start:
# it is never re-run on its own, since a job that crashed the server would crash it again at every start.
INTERRUPTED_BY_RESTART = "interrupted by a server restart"
OUTPUT = "job.out"


def launch_job(module: str, folder: Path) -> subprocess.Popen[bytes]:
    """Start the job on folder/SPEC.json; stdout and stderr go to folder/job.out."""
    with (folder / OUTPUT).open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", module, str(folder / SPEC)], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


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

