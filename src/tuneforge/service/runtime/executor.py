"""Run workers as local processes (one, or N under torchrun) and watch them, also after a server restart.

Each worker gets its own process group, so a stop or a kill reaches every torchrun rank, and a server that dies
leaves its workers running; `poll` finds them again by pid and start time (a reused pid is not mistaken)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psutil

from tuneforge.service.runtime.processes import create_time, is_same_process, signal_group

WORKER_OUTPUT = "worker.out"


@dataclass(frozen=True)
class Launched:
    pid: int
    started_at: float
    command: list[str]


@dataclass(frozen=True)
class ProcessState:
    alive: bool
    exit_code: int | None = None  # known for processes this server started; None for re-attached ones


class LocalExecutor:
    def __init__(self, python: str = sys.executable) -> None:
        self.python = python
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def launch(self, run_dir: Path, devices: list[int], kind: Literal["cuda", "cpu"], threads: int | None) -> Launched:
        from tuneforge.rundir import RunDir
        from tuneforge.rundir.launch import worker_command, worker_environment

        config = RunDir(run_dir).read_spec().config
        sharded = bool(config.get("deepspeed") or config.get("fsdp"))
        command = worker_command(run_dir, max(1, len(devices)), self.python, sharded=sharded)
        env = worker_environment(dict(os.environ), devices, kind, threads)
        with (run_dir / WORKER_OUTPUT).open("ab") as output:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                       env=env, cwd=run_dir, start_new_session=True)
        self._children[process.pid] = process
        return Launched(process.pid, create_time(process.pid) or time.time(), command)

    def poll(self, pid: int, started_at: float | None) -> ProcessState:
        child = self._children.get(pid)
        if child is not None:
            code = child.poll()
            if code is None:
                return ProcessState(alive=True)
            del self._children[pid]
            return ProcessState(alive=False, exit_code=code)
        return ProcessState(alive=is_same_process(pid, started_at))

    def request_stop(self, pid: int) -> None:
        """SIGTERM to the worker, or under torchrun to its ranks (torchrun itself would exit 1 when signalled, though
        the ranks stop cleanly): every rank finishes its step, rank 0 saves a checkpoint."""
        try:
            ranks = [c for c in psutil.Process(pid).children() if "tuneforge.engine.run" in " ".join(c.cmdline())]
        except psutil.Error:
            ranks = []
        if not ranks:
            signal_group(pid, signal.SIGTERM)
        for rank in ranks:
            with contextlib.suppress(psutil.Error):
                rank.send_signal(signal.SIGTERM)

    def kill(self, pid: int) -> None:
        signal_group(pid, signal.SIGKILL)

    def wait(self, pid: int, started_at: float | None, timeout: float) -> bool:
        """True when the process ended within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.poll(pid, started_at).alive:
                return True
            time.sleep(0.1)
        return not self.poll(pid, started_at).alive

