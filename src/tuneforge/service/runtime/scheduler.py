"""The queue: watch active tasks (ingest events, find dead workers, escalate slow stops) and start pending tasks
in creation order as soon as the devices they ask for are free. One thread in the server process."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tuneforge.planning.devices import Device
from tuneforge.rundir import RunDir
from tuneforge.schemas.run_spec import RunSpec
from tuneforge.schemas.tasks import TaskStatus
from tuneforge.service.runtime.devices import claiming, held_devices
from tuneforge.service.runtime.executor import Executor, Placement, WorkerRef
from tuneforge.service.runtime.ingest import ingest_events, mark_worker_lost
from tuneforge.settings import Settings
from tuneforge.store import Database, Task, User

log = logging.getLogger(__name__)
WATCHED = (TaskStatus.RUNNING, TaskStatus.STOPPING)


class Scheduler:
    def __init__(self, db: Database, settings: Settings, executor: Executor, devices: list[Device]) -> None:
        self.db, self.settings, self.executor, self.devices = db, settings, executor, devices
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one tick at a time (the thread, and tests calling tick())
        self._exiting: dict[int, WorkerRef] = {}  # task id → workers that reported an end

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="tuneforge-scheduler", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)

    def wake(self) -> None:
        """Something changed (a task was created or stopped): look now instead of at the next poll."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # the queue must survive one bad tick (a database hiccup, a vanished file)
                log.exception("scheduler tick failed")
            self._wake.wait(self.settings.poll_interval_s)
            self._wake.clear()

    def tick(self) -> None:
        with self._lock:
            for task_id in self._ids(WATCHED):
                try:
                    self.watch(task_id)
                except Exception:  # one task's trouble (a damaged file, a vanished folder) never stalls the rest
                    log.exception("task %s could not be watched this tick", task_id)
            self._record_exit_codes()
            self.launch_pending()

    def _ids(self, statuses: tuple[TaskStatus, ...]) -> list[int]:
        with self.db.session() as session:
            query = select(Task.id).where(Task.status.in_(statuses)).order_by(Task.created_at, Task.id)
            return list(session.scalars(query))

    def watch(self, task_id: int) -> None:
        with self.db.session() as session:
            task = session.get(Task, task_id)
            if task is None or task.status not in WATCHED:
                return
            ingest_events(session, task)
            if task.pid is None and not task.command:  # claimed but not launched yet
                return
            worker = worker_ref(task)
            state = self.executor.poll(worker)
            if task.status not in WATCHED:  # a final event arrived; the exit code follows when the process ends
                if state.alive:
                    self._exiting[task.id] = worker
                elif state.exit_code is not None:
                    task.exit_code = state.exit_code
                return
            if not state.alive:
                ingest_events(session, task)  # the final event may have landed just before the exit
                if task.status in WATCHED:
                    reason = state.reason or ("killed by a signal" if (state.exit_code or 0) < 0
                                              else "it crashed or was killed")
                    mark_worker_lost(task, state.exit_code, reason)
                elif state.exit_code is not None:
                    task.exit_code = state.exit_code
                return
            waited = time.time() - (task.stop_requested_at or time.time())
            if task.status == TaskStatus.STOPPING and waited > self.settings.stop_grace_s:
                log.warning("task %s ignored SIGTERM for %.0f s: killing it", task.id, waited)
                self.executor.kill(worker)

    def _record_exit_codes(self) -> None:
        for task_id, worker in list(self._exiting.items()):
            state = self.executor.poll(worker)
            if state.alive:
                continue
            del self._exiting[task_id]
            with self.db.session() as session:
                task = session.get(Task, task_id)
                if task is not None and task.pid == worker.pid:
                    task.exit_code = state.exit_code

    def busy_devices(self) -> set[int]:
        """Devices any job holds (tasks, evaluations, deployments): the one ledger in service.runtime.devices."""
        with self.db.session() as session:
            return set(held_devices(session))

    def launch_pending(self) -> None:
        """First come, first served; a later task that fits free devices may start before an earlier one that
        waits for a busy device (backfill), so one large request never idles the whole host."""
        with claiming():  # an evaluation or deployment claiming a GPU meanwhile waits for these launches
            self._launch_pending()

    def _launch_pending(self) -> None:
        busy = self.busy_devices()
        usage = UserUsage.now(self.db)
        for task_id in self._ids((TaskStatus.PENDING,)):
            with self.db.session() as session:
                task = session.get(Task, task_id)
                if task is None or task.status != TaskStatus.PENDING:
                    continue
                chosen = self._choose(task, busy)
                held = len(chosen) if chosen else task.device_count  # a cluster's devices count against max_gpus
                if chosen is None or not usage.allows(task.owner_id, held):
                    continue
                if not self._claim(session, task.id):
                    continue
                busy |= set(chosen)
                usage.add(task.owner_id, held)
                self._launch(task, chosen)

    def _choose(self, task: Task, busy: set[int]) -> list[int] | None:
        if self._on_a_cluster(task):
            return []  # the cluster places it: no device of this host is claimed
        wanted, count = task.requested_devices, task.device_count
        free = [d.index for d in self.devices if d.index not in busy]
        if wanted is not None:
            return list(wanted) if all(i in free for i in wanted) else None
        return free[:count] if len(free) >= count else None

    def _on_a_cluster(self, task: Task) -> bool:
        """Kubernetes, or Ray at TUNEFORGE_RAY_ADDRESS. Without an address a Ray task starts a Ray of its own on
        this host, on devices the queue claims for it like for a local task."""
        executor = task_executor(task)
        return executor == "kubernetes" or (executor == "ray" and bool(self.settings.ray_address))

    @staticmethod
    def _claim(session: Session, task_id: int) -> bool:
        """pending → running only if nobody (a stop, a delete) changed it meanwhile."""
        result = session.execute(update(Task).where(Task.id == task_id, Task.status == TaskStatus.PENDING)
                                 .values(status=TaskStatus.RUNNING))
        return bool(getattr(result, "rowcount", 0) == 1)

    def _launch(self, task: Task, devices: list[int]) -> None:
        if not task.run_dir:  # rows written by other tools: the run directory is always under runs_path
            task.run_dir = str(self.settings.runs_path / f"task-{task.id}")
            task.log_path = str(Path(task.run_dir) / "train.log")
        run_dir = RunDir(Path(task.run_dir))
        config = dict(task.training_args)
        if task.resume_requested:
            config["resume_from_checkpoint"] = "last"
        run_dir.create(RunSpec(config=config, task_id=str(task.id)))
        run_dir.stop_file.unlink(missing_ok=True)  # a resumed run's old stop request
        kind = self.devices[0].kind if self.devices else "cpu"
        threads = max(1, (os.cpu_count() or 1) // self.settings.cpu_slots) if kind == "cpu" else None
        if task_executor(task) == "kubernetes":  # the cluster's nodes, not this server, say what a device is
            kind, threads = ("cuda" if self.settings.kubernetes_gpus else "cpu"), None
        try:
            launched = self.executor.launch(run_dir.path, placement(task, kind, devices, threads))
        except OSError as exc:
            task.status, task.ended_at = TaskStatus.FAILED, time.time()
            task.error_message = f"could not start the worker: {exc}"
            return
        task.status = TaskStatus.RUNNING
        task.devices = devices
        task.pid, task.pid_started_at, task.command = launched.pid, launched.started_at, launched.command
        task.started_at = task.started_at if task.resume_requested and task.started_at else time.time()
        task.ended_at, task.error_message, task.exit_code, task.resume_requested = None, None, None, False
        task.stop_requested_at = None
        log.info("task %s started: pid %s on devices %s", task.id, launched.pid, devices)


def task_executor(task: Task) -> str:
    """Where the task runs: a Ray cluster when its config asks for Ray workers, else its placement's executor."""
    if (task.training_args or {}).get("ray_num_workers"):
        return "ray"
    return str((task.gpu_config or {}).get("executor") or "local")


def placement(task: Task, kind: Literal["cuda", "cpu"], devices: list[int], threads: int | None) -> Placement:
    given = task.gpu_config or {}
    nodes = int(given.get("nodes") or 1)
    per_node = max(1, len(devices)) if devices else max(1, task.device_count // nodes)
    return Placement(kind, tuple(devices), nodes, per_node, threads, dict(given.get("node_selector") or {}),
                     task_executor(task))


def worker_ref(task: Task) -> WorkerRef:
    return WorkerRef(Path(task.run_dir or "."), task.pid, task.pid_started_at, task_executor(task))


@dataclass
class UserUsage:
    """What each user's running tasks hold, against their limits (users.max_running_tasks / max_gpus): a task of
    a user at a limit waits in the queue, and others' tasks start past it."""

    limits: dict[int, tuple[int | None, int | None]]
    tasks: Counter[int | None] = field(default_factory=Counter)
    devices: Counter[int | None] = field(default_factory=Counter)

    @classmethod
    def now(cls, db: Database) -> UserUsage:
        with db.session() as session:
            limits = {user_id: (tasks, devices) for user_id, tasks, devices in session.execute(
                select(User.id, User.max_running_tasks, User.max_gpus).where(
                    User.max_running_tasks.is_not(None) | User.max_gpus.is_not(None)))}
            usage = cls(limits)
            for owner_id, devices, count in session.execute(select(Task.owner_id, Task.devices, Task.device_count)
                                                            .where(Task.status.in_(WATCHED))):
                usage.add(owner_id, len(devices or []) or count)
        return usage

    def allows(self, owner_id: int | None, device_count: int) -> bool:
        if owner_id not in self.limits:
            return True
        max_tasks, max_devices = self.limits[owner_id]
        return ((max_tasks is None or self.tasks[owner_id] < max_tasks)
                and (max_devices is None or self.devices[owner_id] + device_count <= max_devices))

    def add(self, owner_id: int | None, device_count: int) -> None:
        self.tasks[owner_id] += 1
        self.devices[owner_id] += device_count
