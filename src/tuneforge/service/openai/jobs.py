"""OpenAI's fine-tuning jobs (POST/GET /v1/fine_tuning/jobs, …), each one a tuneforge task underneath.

A job is a LoRA task on the job's model (template detected from its tokenizer): `supervised` trains stage sft on a
chat file, `dpo` stage dpo on a preference file, `reinforcement` stage grpo on a reinforcement file with the job's
grader as the reward. The uploaded files resolve through the files service (`training_source`) to managed dataset
versions. The task plans, queues, trains, stops and resumes as every task does; the job adds OpenAI's ids, statuses,
events and checkpoints, and publishes what the task trains as models named the OpenAI way (job_sync)."""

from __future__ import annotations

import builtins  # in the service's signatures `list` names its list method: the type is builtins.list
import contextlib
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from sqlalchemy import select

from tuneforge.schemas import ConfigProblem
from tuneforge.schemas.tasks import TaskStatus
from tuneforge.service.errors import Conflict, InvalidInput, NotFound, ServiceError
from tuneforge.service.graders.graders import GraderService
from tuneforge.service.models.models import ModelService
from tuneforge.service.openai.errors import InvalidRequest
from tuneforge.service.openai.grader_runs import run_grader, validate_grader
from tuneforge.service.openai.hyperparameters import ResolvedMethod, resolve_method
from tuneforge.service.openai.integrations import integration_arguments
from tuneforge.service.openai.job_events import job_events
from tuneforge.service.openai.job_requests import (
    SEED_MAX,
    GraderRunRequest,
    GraderValidateRequest,
    JobCreateRequest,
)
from tuneforge.service.openai.job_requests_map import in_request_terms
from tuneforge.service.openai.job_state import job_view
from tuneforge.service.openai.job_sync import JobSync, add_note, on_task_end
from tuneforge.service.openai.naming import checkpoint_id, new_job_id
from tuneforge.service.openai.views import (
    CheckpointMetrics,
    FineTuningJobView,
    GraderRunResult,
    GraderValidated,
    JobCheckpoint,
    JobCheckpointList,
    JobEventList,
    JobList,
)
from tuneforge.service.tasks.planning import TaskRequest
from tuneforge.service.tasks.tasks import TaskService
from tuneforge.store import Database, FineTuningJob, Task
from tuneforge.store.scope import current_actor

FILE_FORMATS = {"supervised": "chat", "dpo": "preference", "reinforcement": "reinforcement"}
MAX_LIMIT = 100
Item = TypeVar("Item")


class TrainingSource(Protocol):
    """An uploaded file as training data (files service): its format and the dataset version holding it."""

    @property
    def file_id(self) -> str: ...
    @property
    def format(self) -> str: ...  # chat | preference | reinforcement
    @property
    def dataset_ref(self) -> str: ...  # name@vN of a managed dataset
    @property
    def lines(self) -> int: ...


class TrainingFiles(Protocol):
    def training_source(self, file_id: str, field: str) -> TrainingSource: ...


class FineTuningService:
    def __init__(self, db: Database, tasks: TaskService, models: ModelService, graders: GraderService,
                 files: TrainingFiles) -> None:
        self.db = db
        self.tasks = tasks
        self.models = models
        self.graders = graders
        self.files = files
        self.sync = JobSync(db, models)
        on_task_end(db, self.sync.tasks_ended)  # publish a job's models as soon as its task ends

    # -- create --------------------------------------------------------------------------------------------------
    def create(self, request: JobCreateRequest) -> FineTuningJobView:
        kind = request.method.type if request.method else "supervised"
        problems: builtins.list[ConfigProblem] = []
        training = self._source(request.training_file, "training_file", kind, problems)
        validation = self._source(request.validation_file, "validation_file", kind, problems) \
            if request.validation_file else None
        method = resolve_method(request, training.lines if training else 0, request.validation_file is not None)
        problems += method.problems
        grader = self._grader(request, problems) if kind == "reinforcement" else None
        job_id = new_job_id()
        reporting, integration_problems = integration_arguments(request.integrations, job_id)
        base, base_args = self._base_model(request.model, problems)
        problems += integration_problems
        if problems or training is None:
            raise InvalidRequest.of(problems)
        seed = request.seed if request.seed is not None else secrets.randbelow(SEED_MAX + 1)
        args = {**method.training_args, **base_args, **reporting, "seed": seed, "logging_steps": 1,
                "save_strategy": "epoch"}  # OpenAI's checkpoints: one at the end of each epoch
        if validation is not None:
            args["eval_dataset"] = validation.dataset_ref
        if grader is not None:
            args["rewards"] = [{"grader": grader, "weight": 1.0}]
        task_id = self._create_task(job_id, base, training.dataset_ref, args, f"method.{kind}.hyperparameters")
        try:
            self._add_job(job_id, task_id, request, method, grader, seed)
        except Exception:
            self.tasks.delete(task_id)  # no task without its job
            raise
        return self.get(job_id)

    def _source(self, file_id: str | None, field: str, kind: str,
                problems: builtins.list[ConfigProblem]) -> TrainingSource | None:
        try:
            source = self.files.training_source(file_id or "", field)
        except InvalidInput as exc:  # each detail says what is wrong with the file, naming it
            problems += [ConfigProblem(str(d.get("field") or field), str(d.get("message"))) for d in exc.details]
            return None
        except NotFound as exc:
            problems.append(ConfigProblem(field, exc.message))
            return None
        if source.format != FILE_FORMATS[kind]:
            problems.append(ConfigProblem(field, (
                f"{file_id} holds {source.format} data, but a {kind} job trains on {FILE_FORMATS[kind]} data; "
                f"upload a {FILE_FORMATS[kind]} file, or choose the method that fits this one")))
        return source

    def _grader(self, request: JobCreateRequest, problems: builtins.list[ConfigProblem]) -> dict[str, Any] | None:
        section = request.method.reinforcement if request.method else None
        if section is None:
            problems.append(ConfigProblem("method.reinforcement", "is required: a reinforcement job needs its grader"))
            return None
        found = self.graders.validate(section.grader, "method.reinforcement.grader")
        problems += [ConfigProblem(p.field, p.message) for p in found.problems]
        return section.grader if found.valid else None

    def _base_model(self, model: str, problems: builtins.list[ConfigProblem]) -> tuple[str, dict[str, Any]]:
        """A registered model's files (a fine-tuned one continues its adapter), else `model` as the planner takes
        it (a folder, a .gguf file, a hub id, 'bundled')."""
        try:
            found = self.models.find(model)
        except NotFound:
            return model, {}
        if found["status"] != "ready":
            problems.append(ConfigProblem("model", f"model {model!r} is {found['status']}; wait until it is ready"))
        if found.get("adapterPath"):
            return found["baseModel"], {"adapter_name_or_path": found["adapterPath"]}
        return found.get("modelPath") or found["baseModel"], {}

    def _create_task(self, job_id: str, base: str, dataset: str, args: dict[str, Any], hyperparameters: str) -> int:
        request = TaskRequest(name=job_id, base_model=base, dataset_path=dataset, training_args=args,
                              description=f"OpenAI fine-tuning job {job_id}")
        try:
            return self.tasks.create(request).id
        except ServiceError as exc:
            raise in_request_terms(exc, hyperparameters) from exc

    def _add_job(self, job_id: str, task_id: int, request: JobCreateRequest, method: ResolvedMethod,
                 grader: dict[str, Any] | None, seed: int) -> None:
        actor = current_actor()
        section: dict[str, Any] = {"hyperparameters": method.hyperparameters}
        if grader is not None:
            section["grader"] = grader
        common = ("n_epochs", "batch_size", "learning_rate_multiplier")
        job = FineTuningJob(
            id=job_id, task_id=task_id, model=request.model, training_file=request.training_file,
            validation_file=request.validation_file, method={"type": method.type, method.type: section},
            hyperparameters={key: method.hyperparameters[key] for key in common}, suffix=request.suffix, seed=seed,
            job_metadata=request.metadata, status="queued", created_at=time.time(), notes=[], checkpoint_models=[],
            integrations=[i.model_dump(mode="json") for i in request.integrations] if request.integrations else None,
            organization=actor.name if actor is not None else "tuneforge")
        files = ", ".join(f for f in (request.training_file, request.validation_file) if f)
        for message in (f"Created fine-tuning job: {job_id}", f"Validating training file: {files}",
                        "Files validated, moving job to queued state"):
            add_note(job, message, at=job.created_at)
        with self.db.session() as session:
            session.add(job)

    # -- read ----------------------------------------------------------------------------------------------------
    def get(self, job_id: str) -> FineTuningJobView:
        self.sync.sync(job_id)
        with self.db.session() as session:
            job, task = _job_and_task(session, job_id)
            return job_view(job, task)

    def list(self, after: str | None = None, limit: int = 20, metadata: dict[str, str] | None = None,
             without_metadata: bool = False) -> JobList:
        """Newest first; `metadata`: pairs every job listed has; `without_metadata`: only jobs that have none
        (OpenAI's metadata=null)."""
        _check_limit(limit)
        query = select(FineTuningJob).order_by(FineTuningJob.created_at.desc(), FineTuningJob.id.desc())
        with self.db.session() as session:
            if after is not None:
                anchor = session.get(FineTuningJob, after)
                if anchor is None:
                    raise InvalidRequest.of([ConfigProblem("after", f"no fine-tuning job {after!r}")])
                query = query.where((FineTuningJob.created_at < anchor.created_at) | (
                    (FineTuningJob.created_at == anchor.created_at) & (FineTuningJob.id < anchor.id)))
            if metadata or without_metadata:  # JSON is compared here, alike on SQLite and PostgreSQL
                wanted = _has_metadata(metadata or {}, without_metadata)
                ids = [job.id for job in session.scalars(query.execution_options(yield_per=200)) if wanted(job)]
            else:
                ids = list(session.scalars(query.with_only_columns(FineTuningJob.id).limit(limit + 1)))
        return JobList(data=[self.get(job_id) for job_id in ids[:limit]], has_more=len(ids) > limit)

    def events(self, job_id: str, after: str | None = None, limit: int = 20) -> JobEventList:
        _check_limit(limit)
        self.sync.sync(job_id)
        with self.db.session() as session:
            job, task = _job_and_task(session, job_id)
            events = job_events(job, task)
        page, more = _page(events, after, limit, lambda event: event.id)
        return JobEventList(data=page, has_more=more)

    def checkpoints(self, job_id: str, after: str | None = None, limit: int = 10) -> JobCheckpointList:
        _check_limit(limit)
        self.sync.sync(job_id)
        with self.db.session() as session:
            job, _ = _job_and_task(session, job_id)
            entries = [entry for entry in reversed(job.checkpoint_models) if entry.get("model")]
        checkpoints = [JobCheckpoint(id=checkpoint_id(job_id, e["step"]), created_at=int(e["created_at"]),
                                     fine_tuned_model_checkpoint=e["model"], fine_tuning_job_id=job_id,
                                     metrics=CheckpointMetrics(**e.get("metrics", {})), step_number=e["step"])
                       for e in entries]
        page, more = _page(checkpoints, after, limit, lambda checkpoint: checkpoint.id)
        return JobCheckpointList(data=page, has_more=more, first_id=page[0].id if page else None,
                                 last_id=page[-1].id if page else None)

    # -- control -------------------------------------------------------------------------------------------------
    def cancel(self, job_id: str) -> FineTuningJobView:
        """Cancelled at once; a running task stops in the background (finishing its step)."""
        self.sync.sync(job_id)
        with self.db.session() as session:
            job, task = _job_and_task(session, job_id)
            if job.status in ("succeeded", "failed"):
                raise Conflict(f"fine-tuning job {job_id} has {job.status}; only a job that has not finished can be "
                               "cancelled", [ConfigProblem("fine_tuning_job_id", f"job {job.status}")])
            if job.status != "cancelled":
                job.control, job.status, job.finished_at = "cancel", "cancelled", time.time()
                add_note(job, "Fine-tuning job cancelled")
            active = task is not None and task.status in (TaskStatus.PENDING, TaskStatus.RUNNING)
        if active and task is not None:
            self._stop(task.id)
        return self.get(job_id)

    def pause(self, job_id: str) -> FineTuningJobView:
        """A graceful stop: the task finishes its step, saves a checkpoint and stops; the job is `paused` then."""
        self.sync.sync(job_id)
        with self.db.session() as session:
            job, task = _job_and_task(session, job_id)
            if job.status == "paused" or (job.control == "pause" and task is not None
                                          and task.status == TaskStatus.STOPPING):
                return job_view(job, task)
            if job.status != "running" or task is None or task.status != TaskStatus.RUNNING:
                why = "nothing has trained yet: cancel it instead, or pause it once it runs" \
                    if job.status == "queued" else "only a running job pauses"
                raise Conflict(f"fine-tuning job {job_id} is {job.status}; {why}",
                               [ConfigProblem("fine_tuning_job_id", f"job {job.status}")])
            job.control = "pause"
            add_note(job, "Pausing: the job saves a checkpoint at the end of its current step")
            task_id = task.id
        self._stop(task_id)
        return self.get(job_id)

    def resume(self, job_id: str) -> FineTuningJobView:
        """A paused job goes back to the queue and continues from the checkpoint its pause saved."""
        self.sync.sync(job_id)
        with self.db.session() as session:
            job, task = _job_and_task(session, job_id)
            if job.status != "paused" or task is None:
                raise Conflict(f"fine-tuning job {job_id} is {job.status}; only a paused job resumes",
                               [ConfigProblem("fine_tuning_job_id", f"job {job.status}")])
            task_id = task.id
        self.tasks.resume(task_id)
        with self.db.session() as session:
            job, _ = _job_and_task(session, job_id)
            job.control, job.status = None, "queued"
            add_note(job, "Fine-tuning job resumed")
        return self.get(job_id)

    # -- graders ------------------------------------------------------------------------------------------------
    def run_grader(self, request: GraderRunRequest) -> GraderRunResult:
        return run_grader(self.graders, request)

    def validate_grader(self, request: GraderValidateRequest) -> GraderValidated:
        return validate_grader(self.graders, request)

    def _stop(self, task_id: int) -> None:
        with contextlib.suppress(Conflict):  # it ended meanwhile: the job's status follows its task's
            self.tasks.stop(task_id)


def _job_and_task(session: Any, job_id: str) -> tuple[FineTuningJob, Task | None]:
    job = session.get(FineTuningJob, job_id)
    if job is None:
        raise NotFound(f"fine-tuning job {job_id!r} does not exist",
                       [ConfigProblem("fine_tuning_job_id", "no such fine-tuning job")])
    task = session.get(Task, job.task_id) if job.task_id is not None else None
    return job, task


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest.of([ConfigProblem("limit", f"must be between 1 and {MAX_LIMIT}")])


def _has_metadata(pairs: dict[str, str], none: bool) -> Callable[[FineTuningJob], bool]:
    if none:
        return lambda job: not job.job_metadata
    return lambda job: all((job.job_metadata or {}).get(key) == value for key, value in pairs.items())


def _page(items: Sequence[Item], after: str | None, limit: int, key: Callable[[Item], str]
          ) -> tuple[builtins.list[Item], bool]:
    """The `limit` items after the one whose id is `after` (from the start without it), and whether more follow."""
    start = 0
    if after is not None:
        ids = [key(item) for item in items]
        if after not in ids:
            raise InvalidRequest.of([ConfigProblem("after", f"{after!r} is not an id of this list")])
        start = ids.index(after) + 1
    return list(items[start:start + limit]), start + limit < len(items)

