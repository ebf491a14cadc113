"""Processes the service starts and finds again after a restart: a pid is only "ours" when its start time matches,
so a reused pid is never mistaken for a worker, a job or a deployment."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import psutil


def create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def is_same_process(pid: int, started_at: float | None) -> bool:
    """The process is alive (not a zombie) and is the one started at `started_at` (None: any)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return started_at is None or abs(process.create_time() - started_at) < 1.0
    except psutil.Error:
        return False


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the process group the pid leads (every torchrun rank), or the pid alone when it leads none."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def file_tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log, read from its end (logs can be large)."""
    if not path.is_file():
        return ""
    with path.open("rb") as f:
        f.seek(0, 2)
        f.seek(max(0, f.tell() - 32 * 1024))
        return "\n".join(f.read().decode("utf-8", errors="replace").splitlines()[-lines:])
