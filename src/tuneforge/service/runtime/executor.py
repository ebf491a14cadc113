"""How workers run, behind one interface: local processes (one, or N under torchrun), a Ray cluster
(service.runtime.ray_executor) or Kubernetes (service.runtime.kubernetes). The scheduler and the task service speak
only `Executor`; the worker and its run directory (spec, events, checkpoints) are the same everywhere.

Locally each worker gets its own process group, so a stop or a kill reaches every torchrun rank, and a server that
dies leaves its workers running; `poll` finds them again by pid and start time (a reused pid is not mistaken)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import psutil

from tuneforge.service.runtime.processes import create_time, is_same_process, signal_group

WORKER_OUTPUT = "worker.out"


@dataclass(frozen=True)
class Placement:
    """Where a run trains: `nodes` machines × `devices_per_node` devices each (seed terms: parallelism × cards).
    `devices` are the local indexes the scheduler claimed (local executor); remote executors leave placement on
    their nodes to the cluster, within `node_selector`."""

    kind: Literal["cuda", "cpu"] = "cpu"
    devices: tuple[int, ...] = ()
    nodes: int = 1
    devices_per_node: int = 1
    threads: int | None = None  # per process, on CPUs
    node_selector: dict[str, str] = field(default_factory=dict)
    executor: str = "local"  # which of the server's executors runs it (ExecutorRouter)

    @property
    def world_size(self) -> int:
        return self.nodes * self.devices_per_node


@dataclass(frozen=True)
class Launched:
    pid: int | None  # the local process (a Ray driver too); None when the work runs only on a cluster
    started_at: float
    command: list[str]


@dataclass(frozen=True)
class WorkerRef:
    """What the task row keeps of a launched worker: enough for any executor to find it again after a restart."""

    run_dir: Path
    pid: int | None = None
    started_at: float | None = None
    executor: str = "local"


@dataclass(frozen=True)
class ProcessState:
    alive: bool
    exit_code: int | None = None  # known for processes this server started; None for re-attached ones
    reason: str | None = None  # why it ended, when the executor knows more than an exit code (a lost node)


class Executor(Protocol):
    name: str

    def launch(self, run_dir: Path, placement: Placement) -> Launched: ...

    def poll(self, worker: WorkerRef) -> ProcessState: ...

    def request_stop(self, worker: WorkerRef) -> None: ...

    def kill(self, worker: WorkerRef) -> None: ...

    def wait(self, worker: WorkerRef, timeout: float) -> bool: ...


def request_stop_file(run_dir: Path) -> None:
    """Ask the worker to stop through its run directory: read on shared storage by workers on any node."""
    from tuneforge.rundir import RunDir

    with contextlib.suppress(OSError):
        RunDir(run_dir).stop_file.write_text(f"{time.time()}\n", encoding="utf-8")


def wait_until_ended(executor: Executor, worker: WorkerRef, timeout: float) -> bool:
    """True when the worker ended within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not executor.poll(worker).alive:
            return True
        time.sleep(0.1)
    return not executor.poll(worker).alive


class LocalExecutor:
    name = "local"

    def __init__(self, python: str = sys.executable) -> None:
        self.python = python
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def launch(self, run_dir: Path, placement: Placement) -> Launched:
        from tuneforge.rundir import RunDir
        from tuneforge.rundir.launch import worker_command, worker_environment

        config = RunDir(run_dir).read_spec().config
        sharded = bool(config.get("deepspeed") or config.get("fsdp"))
        command = worker_command(run_dir, max(1, len(placement.devices)), self.python, sharded=sharded)
        env = worker_environment(dict(os.environ), list(placement.devices), placement.kind, placement.threads)
        return self.start(command, env, run_dir)

    def start(self, command: list[str], env: dict[str, str], run_dir: Path) -> Launched:
        with (run_dir / WORKER_OUTPUT).open("ab") as output:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                       env=env, cwd=run_dir, start_new_session=True)
        self._children[process.pid] = process
        return Launched(process.pid, create_time(process.pid) or time.time(), command)

    def poll(self, worker: WorkerRef) -> ProcessState:
        if worker.pid is None:
            return ProcessState(alive=False)
        child = self._children.get(worker.pid)
        if child is not None:
            code = child.poll()
            if code is None:
                return ProcessState(alive=True)
            del self._children[worker.pid]
            return ProcessState(alive=False, exit_code=code)
        return ProcessState(alive=is_same_process(worker.pid, worker.started_at))

    def request_stop(self, worker: WorkerRef) -> None:
        """SIGTERM to the worker, or under torchrun to its ranks (torchrun itself would exit 1 when signalled, though
        the ranks stop cleanly): every rank finishes its step, rank 0 saves a checkpoint."""
        request_stop_file(worker.run_dir)
        if worker.pid is None:
            return
        try:
            ranks = [c for c in psutil.Process(worker.pid).children()
                     if "tuneforge.engine.run" in " ".join(c.cmdline())]
        except psutil.Error:
            ranks = []
        if not ranks:
            signal_group(worker.pid, signal.SIGTERM)
        for rank in ranks:
            with contextlib.suppress(psutil.Error):
                rank.send_signal(signal.SIGTERM)

    def kill(self, worker: WorkerRef) -> None:
        if worker.pid is not None:
            signal_group(worker.pid, signal.SIGKILL)

    def wait(self, worker: WorkerRef, timeout: float) -> bool:
        return wait_until_ended(self, worker, timeout)


class ExecutorRouter:
    """The server's executors by name: each task runs on the one its placement names, and is found there again."""

    name = "router"

    def __init__(self, executors: dict[str, Executor]) -> None:
        self.executors = executors

    def get(self, name: str) -> Executor:
        executor = self.executors.get(name)
        if executor is None:
            raise OSError(f"this server has no {name!r} executor (it has: {', '.join(sorted(self.executors))}); "
                          "configure it (docs/clusters.md) or choose another")
        return executor

    def launch(self, run_dir: Path, placement: Placement) -> Launched:
        return self.get(placement.executor).launch(run_dir, placement)

    def poll(self, worker: WorkerRef) -> ProcessState:
        executor = self.executors.get(worker.executor)
        if executor is None:
            return ProcessState(alive=False, reason=f"its executor {worker.executor!r} is not configured on this "
                                                    "server any more")
        return executor.poll(worker)

    def request_stop(self, worker: WorkerRef) -> None:
        request_stop_file(worker.run_dir)
        if worker.executor in self.executors:
            self.executors[worker.executor].request_stop(worker)

    def kill(self, worker: WorkerRef) -> None:
        if worker.executor in self.executors:
            self.executors[worker.executor].kill(worker)

    def wait(self, worker: WorkerRef, timeout: float) -> bool:
        return wait_until_ended(self, worker, timeout)
