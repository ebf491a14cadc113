"""Task use-cases: create, list, get, log, metrics, samples, checkpoints, stop, delete, copy, resume, estimate."""

from __future__ import annotations

import builtins  # in the service's signatures `list` names its list method: the type is builtins.list
import re
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tuneforge.planning.devices import Device
from tuneforge.rundir import RunDir
from tuneforge.schemas import ALIASES, ConfigProblem
from tuneforge.schemas.tasks import ACTIVE_STATUSES, FINAL_STATUSES, TaskStatus, name_problem
from tuneforge.service.datasets.refs import apply_mixture, resolve_references
from tuneforge.service.errors import Conflict, InvalidInput, escape_like, get_or_not_found, paging_problems
from tuneforge.service.runtime.devices import as_seen_by, held_devices
from tuneforge.service.runtime.executor import ExecutorRouter
from tuneforge.service.runtime.scheduler import Scheduler, worker_ref
from tuneforge.service.tasks.experiments import check_experiment_membership, experiment_defaults
from tuneforge.service.tasks.measured_time import with_measured_time
from tuneforge.service.tasks.planning import TOP_LEVEL, TaskPlan, TaskRequest, plan_task
from tuneforge.service.tasks.run_files import CompletionScan, read_lines, scan_completions
from tuneforge.service.users.users import device_limit_problem
from tuneforge.service.views import (
    CheckpointFile,
    DeviceInventory,
    LogChunk,
    MetricSeries,
    TaskDeleted,
    TaskDetail,
    TaskEstimate,
    TaskSamples,
    device_view,
    metric_series,
    task_detail,
    task_summary,
)
from tuneforge.settings import Settings
from tuneforge.store import Checkpoint, Database, Grader, MetricPoint, Task, TaskDataset
from tuneforge.store.scope import ALL_OWNERS, current_actor

LOG_CHUNK_BYTES = 256 * 1024


class TaskService:
    def __init__(self, db: Database, settings: Settings, devices: list[Device], executor: ExecutorRouter,
                 scheduler: Scheduler) -> None:
        self.db = db
        self.settings = settings
        self.devices = devices
        self.executor = executor
        self.scheduler = scheduler

    # -- create ------------------------------------------------------------------------------------------------
    def plan(self, request: TaskRequest, check_name: bool = True) -> TaskPlan:
        if request.experiment_id is not None:
            request = self._with_experiment_defaults(request, request.experiment_id)
        request, problems = apply_mixture(request)
        with self.db.session() as session:
            resolved = resolve_references(session, request.dataset_path, request.training_args,
                                          self.settings.home / "datasets")
        if problems or resolved.problems:
            raise InvalidInput.of([*problems, *resolved.problems])
        request = replace(request, dataset_path=resolved.dataset_path, training_args=resolved.training_args)
        plan = plan_task(request, self.settings, self.devices, check_name=check_name,
                         stored_grader=self._stored_grader, executors=tuple(self.executor.executors))
        plan.pinned = resolved.pinned
        with self.db.session() as session:
            if request.experiment_id is not None:
                check_experiment_membership(session, request.experiment_id, plan.cfg)
            plan.estimate = with_measured_time(session, plan.estimate, str(plan.cfg.model_name_or_path),
                                               plan.config, plan.device_count, request.gpu_config or {})
        return plan

    def _stored_grader(self, name: str) -> dict[str, Any] | None:
        """A stored grader's object by name: a run's `rewards` may name one."""
        with self.db.session() as session:
            row = session.scalar(select(Grader).where(Grader.name == name))
            return dict(row.spec) if row is not None else None

    def _with_experiment_defaults(self, request: TaskRequest, experiment_id: int) -> TaskRequest:
        """A task added to an experiment ("添加任务") inherits its model, dataset, template, method and stage."""
        with self.db.session() as session:
            shared = experiment_defaults(session, experiment_id)
        args = dict(request.training_args) if isinstance(request.training_args, dict) else request.training_args
        if isinstance(args, dict):
            for key in ("template", "finetuning_type", "stage"):
                args.setdefault(key, shared[key])
        return replace(request, base_model=request.base_model or shared["model_name_or_path"],
                       dataset_path=request.dataset_path or shared["dataset"], training_args=args)

    def create(self, request: TaskRequest) -> TaskDetail:
        plan = self.plan(request)
        with self.db.session() as session:
            if session.scalar(select(Task.id).where(Task.name == request.name)) is not None:
                raise Conflict(f"name: a task named {request.name!r} already exists; choose another name",
                               [ConfigProblem("name", "already exists")])
            self._check_output_free(session, plan.output_dir)
            if problem := device_limit_problem(session, plan.device_count):
                raise InvalidInput.of([problem])
            task = _new_task(plan)
            session.add(task)
            try:  # a name taken since the check above, or by another user's task the check cannot see
                session.flush()
            except IntegrityError as exc:
                raise Conflict(f"name: a task named {request.name!r} already exists; choose another name",
                               [ConfigProblem("name", "already exists")]) from exc
            session.add_all(TaskDataset(task_id=task.id, version_id=p.version_id, weight=p.weight)
                            for p in plan.pinned)
            task.run_dir = str(self.settings.runs_path / f"task-{task.id}")
            task.log_path = str(Path(task.run_dir) / "train.log")
            detail = task_detail(task, [])
        self.scheduler.wake()
        return detail

    def _check_output_free(self, session: Session, output_dir: Path) -> None:
        query = select(Task.name).where(Task.output_path == str(output_dir), Task.status.in_(ACTIVE_STATUSES))
        if other := session.scalar(query, execution_options=ALL_OWNERS):  # another user's task counts too
            raise Conflict(f"outputPath: task {other!r} is writing to {output_dir} right now; choose another path",
                           [ConfigProblem("outputPath", f"in use by active task {other!r}")])

    # -- read --------------------------------------------------------------------------------------------------
    def list(self, status: str | None = None, owner_id: int | None = None, name: str | None = None,
             experiment_id: int | None = None, page: int = 1, page_size: int = 20) -> dict[str, Any]:
        problems = []
        statuses = [s.strip() for s in status.split(",")] if status else []
        bad = [s for s in statuses if s not in TaskStatus.__members__.values()]
        if bad:
            problems.append(ConfigProblem("status", f"unknown status {bad[0]!r}; one of: "
                                                    f"{', '.join(s.value for s in TaskStatus)}"))
        problems += paging_problems(page, page_size)
        if problems:
            raise InvalidInput.of(problems)
        query = select(Task)
        if statuses:
            query = query.where(Task.status.in_(statuses))
        if owner_id is not None:
            query = query.where(Task.owner_id == owner_id)
        if experiment_id is not None:
            query = query.where(Task.experiment_id == experiment_id)
        if name:
            pattern = f"%{escape_like(name)}%"
            query = query.where(or_(Task.name.like(pattern, escape="\\"), Task.description.like(pattern, escape="\\")))
        with self.db.session() as session:
            total = session.scalar(select(func.count()).select_from(query.subquery()))
            rows = session.scalars(query.order_by(Task.created_at.desc(), Task.id.desc())
                                   .offset((page - 1) * page_size).limit(page_size))
            items = [task_summary(t) for t in rows]
        return {"total": total, "page": page, "page_size": page_size, "items": items}

    def get(self, task_id: int) -> TaskDetail:
        with self.db.session() as session:
            task = _task(session, task_id)
            return task_detail(task, list(task.checkpoints))

    def metrics(self, task_id: int) -> MetricSeries:
        with self.db.session() as session:
            task = _task(session, task_id)
            points = list(session.scalars(select(MetricPoint).where(MetricPoint.task_id == task_id)
                                          .order_by(MetricPoint.seq)))
            return metric_series(task, points)

    def samples(self, task_id: int, step: int | None = None) -> TaskSamples:
        """GRPO / PPO completions of one step from the run's completions.jsonl (the last step with any when `step`
        is None), and the steps that have samples. Reads the file's last COMPLETIONS_WINDOW_BYTES line by line;
        torn, foreign and over-long lines are counted and skipped."""
        if step is not None and step < 0:
            raise InvalidInput.of([ConfigProblem("step", "must be ≥ 0")])
        with self.db.session() as session:
            task = _task(session, task_id)
            run_dir, status = RunDir(Path(task.run_dir)), task.status
        scan = scan_completions(run_dir.completions_file, step) if task.run_dir else CompletionScan(step)
        return TaskSamples(task_id=task_id, status=status, step=scan.step, steps=sorted(scan.steps),
                           samples=scan.samples, total=scan.total, skipped=scan.skipped, partial=scan.partial)

    def checkpoints(self, task_id: int) -> builtins.list[CheckpointFile]:
        with self.db.session() as session:
            _task(session, task_id)
            rows = session.scalars(select(Checkpoint).where(Checkpoint.task_id == task_id).order_by(Checkpoint.step))
            return [CheckpointFile(step=c.step, path=c.path, created_at=c.created_at, exists=Path(c.path).is_dir())
                    for c in rows]

    def device_inventory(self) -> DeviceInventory:
        """The devices (GPUs, or CPU slots), their memory, what holds each (a task, an evaluation or a deployment:
        the one ledger of service.runtime.devices) and whether any task waits."""

        with self.db.session() as session:
            holders = {index: as_seen_by(holder, current_actor()) for index, holder in held_devices(session).items()}
            queued = session.scalar(select(Task.id).where(Task.status == TaskStatus.PENDING).limit(1)) is not None
        devices = [device_view(d, holders.get(d.index)) for d in self.devices]
        return DeviceInventory(kind=devices[0].kind if devices else "cpu", devices=devices, queued=queued)

    def log(self, task_id: int, offset: int | None = None, tail: int | None = None) -> LogChunk:
        """Lines of train.log: the last `tail` lines, or everything from byte `offset` (follow by passing back
        `nextOffset`)."""
        with self.db.session() as session:
            task = _task(session, task_id)
            path, status = Path(task.log_path), task.status
        if offset is not None and offset < 0:
            raise InvalidInput.of([ConfigProblem("offset", "must be ≥ 0")])
        if not path.is_file():
            return LogChunk(task_id=task_id, status=status, offset=offset or 0, next_offset=offset or 0, lines=[])
        size = path.stat().st_size
        if offset is None:
            start = max(0, size - LOG_CHUNK_BYTES)
            lines, end = read_lines(path, start, size)
            if start > 0:
                lines = lines[1:]  # the first line was cut in the middle
            return LogChunk(task_id=task_id, status=status, offset=start, next_offset=end,
                            lines=lines[-tail:] if tail else lines)
        lines, end = read_lines(path, min(offset, size), min(size, offset + LOG_CHUNK_BYTES))
        return LogChunk(task_id=task_id, status=status, offset=offset, next_offset=end, lines=lines)

    # -- control -----------------------------------------------------------------------------------------------
    def stop(self, task_id: int) -> TaskDetail:
        with self.db.session() as session:
            task = _task(session, task_id)
            if task.status in FINAL_STATUSES:
                raise Conflict(f"task {task.name!r} is already {task.status}; only pending or running tasks stop")
            if task.status == TaskStatus.PENDING:
                task.status, task.ended_at = TaskStatus.STOPPED, time.time()
            elif task.status == TaskStatus.RUNNING:
                task.status, task.stop_requested_at = TaskStatus.STOPPING, time.time()
                if task.command:
                    self.executor.request_stop(worker_ref(task))
            detail = task_detail(task, list(task.checkpoints))
        self.scheduler.wake()
        return detail

    def delete(self, task_id: int) -> TaskDeleted:
        """Stops the task if it runs, removes its run directory (logs, events, checkpoints) and its row; the output
        model files stay."""
        with self.db.session() as session:
            task = _task(session, task_id)
            if task.status in ACTIVE_STATUSES:
                task.status, task.stop_requested_at = TaskStatus.STOPPING, time.time()
            launched, worker = bool(task.command), worker_ref(task)
            run_dir, output = task.run_dir, task.output_path
        if launched and not self.executor.wait(worker, 0):
            # The same grace a stop gets: the worker finishes its step and saves (its output folder is kept), and
            # only a worker that outlives the grace is killed.
            self.executor.request_stop(worker)
            if not self.executor.wait(worker, self.settings.stop_grace_s):
                self.executor.kill(worker)
                self.executor.wait(worker, 5.0)
        with self.db.session() as session:
            remaining = session.get(Task, task_id)  # a concurrent delete may have removed it while we waited
            if remaining is not None:
                session.delete(remaining)
        if run_dir and Path(run_dir).is_dir() and Path(run_dir).resolve() != Path(output).resolve():
            shutil.rmtree(run_dir, ignore_errors=True)
        return TaskDeleted(id=task_id, deleted=True, output_path=output, output_kept=Path(output).exists())

    def copy(self, task_id: int, name: str | None = None, overrides: dict[str, Any] | None = None) -> TaskDetail:
        """A new task with the same parameters. Output goes to a fresh folder named after the copy."""
        with self.db.session() as session:
            source = _task(session, task_id)
            new_name = name or _copy_name(session, source.name)
            changes = {ALIASES.get(k, k): v for k, v in (overrides or {}).items()}
            args = {k: v for k, v in source.training_args.items() if k not in TOP_LEVEL}
            request = TaskRequest(name=new_name, description=source.description, owner_id=source.owner_id,
                                  base_model=changes.pop("model_name_or_path", source.base_model),
                                  dataset_path=changes.pop("dataset", source.dataset),
                                  output_path=changes.pop("output_dir", None),
                                  training_args={**args, **changes},
                                  gpu_config=source.gpu_config, experiment_id=source.experiment_id)
        return self.create(request)

    def resume(self, task_id: int) -> TaskDetail:
        """A stopped or failed task goes back to the queue and continues from its last checkpoint."""
        with self.db.session() as session:
            task = _task(session, task_id)
            if task.status not in (TaskStatus.STOPPED, TaskStatus.FAILED):
                raise Conflict(f"task {task.name!r} is {task.status}; only stopped or failed tasks resume")
            if not task.checkpoints or not any(Path(c.path).is_dir() for c in task.checkpoints):
                raise Conflict(f"task {task.name!r} has no checkpoint to resume from; copy it to start again",
                               [ConfigProblem("checkpoints", "none saved (save_steps decides how often)")])
            task.status, task.resume_requested = TaskStatus.PENDING, True
            task.error_message, task.exit_code, task.ended_at, task.stop_requested_at = None, None, None, None
            detail = task_detail(task, list(task.checkpoints))
        self.scheduler.wake()
        return detail

    def estimate(self, request: TaskRequest) -> TaskEstimate:
        """What createTask would resolve and need, without creating anything."""
        plan = self.plan(replace(request, name=request.name or "estimate"), check_name=bool(request.name))
        return TaskEstimate(estimate=plan.estimate, auto_values=plan.auto_values, training_args=plan.config,
                            dataset=plan.dataset.as_dict() if plan.dataset else None,
                            devices=plan.device_indexes, device_count=plan.device_count)


def _new_task(plan: TaskPlan) -> Task:
    request, cfg = plan.request, plan.cfg
    return Task(
        name=request.name, description=request.description or "", owner_id=request.owner_id,
        experiment_id=request.experiment_id, status=TaskStatus.PENDING, progress=0.0,
        base_model=cfg.model_name_or_path, dataset=",".join(cfg.dataset) if isinstance(cfg.dataset, list)
        else (cfg.dataset or ""), output_path=str(plan.output_dir), stage=cfg.stage,
        finetuning_type=cfg.finetuning_type, training_args=plan.config, auto_values=plan.auto_values,
        gpu_config=request.gpu_config or {}, estimate=plan.estimate, requested_devices=plan.device_indexes,
        device_count=plan.device_count, devices=[], created_at=time.time(), metrics={},
        total_steps=(plan.estimate or {}).get("total_steps"),
    )


def _task(session: Session, task_id: int) -> Task:
    return get_or_not_found(session, Task, task_id, "task")


def _copy_name(session: Session, name: str) -> str:
    base = re.sub(r"-copy(-\d+)?$", "", name)[:50]
    for n in range(1, 1000):
        candidate = f"{base}-copy" if n == 1 else f"{base}-copy-{n}"
        if session.scalar(select(Task.id).where(Task.name == candidate)) is None:
            return candidate
    raise Conflict(f"too many copies of {name!r}; give the copy a name")


def check_name(value: str) -> None:
    if why := name_problem(value):
        raise InvalidInput.of([ConfigProblem("name", why)])
