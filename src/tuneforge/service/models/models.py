"""The model registry: base models, and fine-tuned models published from a task's final output or one of
its checkpoints, with their lineage (base, task, step, datasets, config, metrics)."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneforge.modelref import ModelNotFound, is_bundled_name, locate_model
from tuneforge.planning.paths import confine_tree, escape_problem, is_hub_id
from tuneforge.schemas import ConfigProblem
from tuneforge.schemas.tasks import TaskStatus, model_name_problem, name_problem
from tuneforge.service.errors import Conflict, InvalidInput, NotFound, get_or_not_found
from tuneforge.service.models.imports import (
    ModelFiles,
    ModelImportError,
    copy_model,
    is_object_store_uri,
    list_model_files,
    start_import,
)
from tuneforge.service.runtime.jobs import INTERRUPTED_BY_RESTART
from tuneforge.settings import Settings
from tuneforge.store import Checkpoint, Database, Deployment, RegisteredModel, Task
from tuneforge.store.scope import owner_of_new_row

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

    from tuneforge.service.models.evaluations import EvaluationService  # which imports ready_model from here

log = logging.getLogger(__name__)
BUNDLED_MODEL_NAME = "smollm2-135m-instruct"
ADAPTER_FILES = ("adapter_config.json",)
FULL_MODEL_FILES = ("config.json",)


@dataclass
class PublishRequest:
    task_id: int
    name: str
    checkpoint_step: int | None = None  # None: the task's final model
    description: str = ""
    owner_id: int | None = None


class ModelService:
    def __init__(self, db: Database, settings: Settings, evaluations: EvaluationService) -> None:
        self.db = db
        self.settings = settings
        self.evaluations = evaluations  # a model's evaluations are listed with it and go when it goes
        self.root = settings.home / "registry"

    def ensure_bundled(self) -> None:
        """The bundled SmolLM2 is a registered base model out of the box (when its package is installed)."""
        try:
            locate_model("bundled")
        except ModelNotFound:
            return
        with self.db.session() as session:
            exists = session.scalar(select(RegisteredModel.id).where(RegisteredModel.name == BUNDLED_MODEL_NAME,
                                                                      RegisteredModel.owner_id.is_(None)))
            if exists is None:
                session.add(RegisteredModel(name=BUNDLED_MODEL_NAME, kind="base", source="bundled",
                                            description="SmolLM2-135M-Instruct, bundled with tuneforge",
                                            created_at=time.time()))

    def register_base(self, name: str, source: str, description: str = "",
                      owner_id: int | None = None) -> dict[str, Any]:
        if is_object_store_uri(source):
            return self._import(name, source, description, owner_id)
        problems = [ConfigProblem("name", why)] if (why := name_problem(name)) else []
        source, problem = self._base_source(source)
        problems += [problem] if problem else []
        if problems:
            raise InvalidInput.of(problems)
        with self.db.session() as session:
            self._check_free(session, name, owner_id)
            model = RegisteredModel(name=name, kind="base", source=source, description=description,
                                    owner_id=owner_id, created_at=time.time())
            session.add(model)
            session.flush()
            return model_view(model)

    def _base_source(self, source: str) -> tuple[str, ConfigProblem | None]:
        """What a base model's `source` is stored as: 'bundled', a hub id kept as written (the hub is not contacted
        here: the model is fetched when first used), or a local folder / .gguf file, resolved and confined with every
        file below it. A relative path is looked up in the allowed folders, never the server's working directory."""
        if is_hub_id(source, self.settings.roots):
            return source, None
        path = None
        if not is_bundled_name(source):
            path, problem = confine_tree(source, self.settings.roots, "source")
            if problem or path is None:
                return source, problem
        try:
            locate_model(str(path or source))  # a folder without weights is refused now, not when a job loads it
        except ModelNotFound as exc:
            return source, ConfigProblem("source", f"{exc}" + (f" ({exc.hint})" if exc.hint else ""))
        return str(path or source), None

    def _import(self, name: str, uri: str, description: str, owner_id: int | None) -> dict[str, Any]:
        """Registered at once as `importing`; the files are copied in the background (progress on the row)."""
        if why := name_problem(name):
            raise InvalidInput.of([ConfigProblem("name", why)])
        try:
            fs, files = list_model_files(uri)
        except ModelImportError as exc:
            raise InvalidInput.of([ConfigProblem("source", str(exc))]) from exc
        target = self.root / f"{name}-{int(time.time())}"
        with self.db.session() as session:
            self._check_free(session, name, owner_id)
            model = RegisteredModel(name=name, kind="base", source=str(target), origin=uri, status="importing",
                                    progress=0.0, description=description, owner_id=owner_id, created_at=time.time())
            session.add(model)
            session.flush()
            view, model_id = model_view(model), model.id
        start_import(lambda: self._copy(model_id, fs, files, target))
        return view

    def _copy(self, model_id: int, fs: AbstractFileSystem, files: ModelFiles, target: Path) -> None:
        shown = [0.0]

        def progress(percent: float) -> None:
            if percent - shown[0] >= 1.0:  # one row update per percent, not per chunk
                shown[0] = percent
                self._set_import_state(model_id, "importing", percent)

        try:
            copy_model(fs, files, target, progress)
        except Exception as exc:  # any failure of the store or the disk ends up on the row, with what to do
            log.exception("model import %s failed", model_id)
            self._set_import_state(model_id, "failed", shown[0], f"import failed: {exc}; fix the source, delete "
                                                                  "this model and register it again")
            return
        self._set_import_state(model_id, "ready", 100.0)

    def _set_import_state(self, model_id: int, status: str, progress: float, error: str | None = None) -> None:
        with self.db.session() as session:
            model = session.get(RegisteredModel, model_id)
            if model is not None:
                model.status, model.progress, model.error_message = status, progress, error

    def fail_interrupted_imports(self) -> None:
        """An import cut by a server restart cannot resume its copy: say so instead of `importing` forever."""
        with self.db.session() as session:
            for model in session.scalars(select(RegisteredModel).where(RegisteredModel.status == "importing")):
                model.status = "failed"
                model.error_message = (f"the import was {INTERRUPTED_BY_RESTART}; delete this model and register "
                                       "it again")

    def publish(self, request: PublishRequest) -> dict[str, Any]:
        """A completed or stopped task (its final output, or a checkpoint) becomes a registered model. A checkpoint is
        copied into the registry: deleting the task removes its checkpoints."""
        if why := model_name_problem(request.name):
            raise InvalidInput.of([ConfigProblem("name", why)])
        with self.db.session() as session:
            task = session.get(Task, request.task_id)
            if task is None:
                raise NotFound(f"task {request.task_id} does not exist", [ConfigProblem("taskId", "no such task")])
            # the model is the task owner's (also when an admin, or the platform at a job's end, publishes it)
            owner_id = request.owner_id if request.owner_id is not None else task.owner_id
            self._check_free(session, request.name, owner_id)
            folder, step = self._source_folder(session, task, request.checkpoint_step)
            if problem := escape_problem(folder, self.settings.roots, "checkpointStep" if request.checkpoint_step
                                         is not None else "taskId"):
                raise InvalidInput.of([problem])  # the copy (or a later load) would read the linked file
            kind = "adapter" if any((folder / f).is_file() for f in ADAPTER_FILES) else "model"
            if request.checkpoint_step is not None:
                target = self.root / f"{request.name}-{int(time.time())}"
                shutil.copytree(folder, target, ignore=shutil.ignore_patterns(
                    "optimizer.pt", "scheduler.pt", "rng_state*.pth", "scaler.pt"))
                folder = target
            model = RegisteredModel(
                name=request.name, kind="finetuned", description=request.description, owner_id=owner_id,
                source=task.base_model, adapter_path=str(folder) if kind == "adapter" else None,
                model_path=str(folder) if kind == "model" else None, task_id=task.id, task_name=task.name,
                checkpoint_step=step, datasets=task.dataset.split(",") if task.dataset else [],
                training_config=task.training_args, metrics=_metrics_at(task, step), created_at=time.time())
            session.add(model)
            session.flush()
            return model_view(model)

    def _source_folder(self, session: Session, task: Task, step: int | None) -> tuple[Path, int | None]:
        if step is None:
            if task.status != TaskStatus.COMPLETED:
                raise Conflict(f"task {task.name!r} is {task.status}: only a completed task has a final model; "
                               "publish one of its checkpoints (checkpointStep)",
                               [ConfigProblem("checkpointStep", "required unless the task completed")])
            folder = Path(task.output_path)
            if not any((folder / f).is_file() for f in (*ADAPTER_FILES, *FULL_MODEL_FILES)):
                raise Conflict(f"{folder} holds no model any more", [ConfigProblem("taskId", "output missing")])
            return folder, task.step
        checkpoint = session.scalar(select(Checkpoint).where(Checkpoint.task_id == task.id, Checkpoint.step == step))
        steps = [c.step for c in task.checkpoints]
        if checkpoint is None or not Path(checkpoint.path).is_dir():
            known = ", ".join(map(str, steps)) or "none"
            raise InvalidInput.of([ConfigProblem("checkpointStep", f"task {task.name!r} has no checkpoint at step "
                                                                   f"{step} (saved: {known})")])
        return Path(checkpoint.path), step

    def _check_free(self, session: Session, name: str, owner_id: int | None) -> None:
        owner_id = owner_of_new_row(owner_id)
        owner = RegisteredModel.owner_id.is_(None) if owner_id is None else RegisteredModel.owner_id == owner_id
        if session.scalar(select(RegisteredModel.id).where(RegisteredModel.name == name, owner)) is not None:
            raise Conflict(f"name: a model named {name!r} already exists", [ConfigProblem("name", "already exists")])

    def list(self, kind: str | None = None, owner_id: int | None = None, name: str | None = None) -> dict[str, Any]:
        query = select(RegisteredModel).order_by(RegisteredModel.created_at.desc(), RegisteredModel.id.desc())
        if kind:
            query = query.where(RegisteredModel.kind == kind)
        if owner_id is not None:
            query = query.where(RegisteredModel.owner_id == owner_id)
        if name:
            query = query.where(RegisteredModel.name.contains(name, autoescape=True))
        with self.db.session() as session:
            items = [model_view(m, brief=True) for m in session.scalars(query)]
        return {"total": len(items), "items": items}

    def get(self, model_id: int) -> dict[str, Any]:
        with self.db.session() as session:
            view = model_view(_model(session, model_id))
        view["evaluations"] = self.evaluations.list(model_id, page_size=5)["items"]  # brought up to date
        return view

    def find(self, name: str) -> dict[str, Any]:
        with self.db.session() as session:
            model = session.scalar(select(RegisteredModel).where(RegisteredModel.name == name))
            if model is None:
                raise NotFound(f"model {name!r} is not registered", [ConfigProblem("model", "no such model")])
            return model_view(model)

    def delete(self, model_id: int) -> dict[str, Any]:
        with self.db.session() as session:
            model = _model(session, model_id)
            serving = session.scalars(select(Deployment.name).where(Deployment.model_id == model_id)).all()
            if serving:
                raise Conflict(f"model {model.name!r} is deployed as {', '.join(serving)}; delete the deployment(s) "
                               "first", [ConfigProblem("id", "in use by a deployment")])
            evaluating = self.evaluations.running_for_model(session, model_id)
            if evaluating:
                raise Conflict(f"model {model.name!r} is being evaluated (evaluation {evaluating[0]}); stop it first",
                               [ConfigProblem("id", "in use by an evaluation")])
            if model.status == "importing":
                raise Conflict(f"model {model.name!r} is still importing ({model.progress:.0f}%); delete it when the "
                               "copy has ended", [ConfigProblem("id", "importing")])
            # only what the registry made for this model (a checkpoint copy, an import): a task's output or a
            # user's folder the model points at stays
            owned = [Path(p) for p in (model.adapter_path, model.model_path, model.source if model.origin else None)
                     if p and self._made_here(Path(p))]
            owned += self.evaluations.job_folders(session, model_id)  # their rows go with the model
            session.delete(model)
        for folder in owned:
            shutil.rmtree(folder, ignore_errors=True)
        return {"id": model_id, "deleted": True}

    def _made_here(self, folder: Path) -> bool:
        """A folder the registry created: directly in HOME/registry (never the registry itself), not a link."""
        return not folder.is_symlink() and folder.resolve().parent == self.root.resolve()


def _metrics_at(task: Task, step: int | None) -> dict[str, Any]:
    metrics = dict(task.metrics or {})
    if step is not None and step != task.step:
        losses = [p for p in task.points if p.kind == "train" and p.step <= step and p.loss is not None]
        evals = [p for p in task.points if p.kind == "eval" and p.step <= step and p.eval_loss is not None]
        metrics = {"loss": losses[-1].loss if losses else None, "eval_loss": evals[-1].eval_loss if evals else None,
                   "step": step}
    return metrics


def _model(session: Session, model_id: int) -> RegisteredModel:
    return get_or_not_found(session, RegisteredModel, model_id, "model")


def ready_model(session: Session, model_id: int, field: str = "modelId") -> RegisteredModel:
    """The model, if its files are all here (an object-store import may still be copying, or have failed)."""
    model = get_or_not_found(session, RegisteredModel, model_id, "model", field)
    if model.status != "ready":
        why = f"is still importing ({model.progress:.0f}%)" if model.status == "importing" else \
            f"failed to import: {model.error_message}"
        raise Conflict(f"model {model.name!r} {why}", [ConfigProblem(field, f"model is {model.status}")])
    return model


def model_view(model: RegisteredModel, brief: bool = False) -> dict[str, Any]:
    view = {"id": model.id, "name": model.name, "kind": model.kind, "description": model.description,
            "status": model.status, "progress": round(model.progress, 1), "origin": model.origin,
            "errorMessage": model.error_message,
            "ownerId": model.owner_id, "baseModel": model.source, "createdAt": model.created_at,
            "taskId": model.task_id, "checkpointStep": model.checkpoint_step,
            "metrics": {k: model.metrics.get(k) for k in ("eval_loss", "train_loss", "loss") if k in model.metrics}}
    if not brief:
        view |= {"adapterPath": model.adapter_path, "modelPath": model.model_path, "merged": model.merged,
                 "lineage": {"baseModel": model.source, "task": {"id": model.task_id, "name": model.task_name},
                             "checkpointStep": model.checkpoint_step, "datasets": model.datasets,
                             "trainingConfig": model.training_config, "metrics": model.metrics}}
    return view
