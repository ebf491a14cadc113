"""Experiments: tasks that share base model, template, method, stage and dataset and differ in
hyper-parameters. "添加任务" = create a task with the experiment's id; its shared fields come from the experiment."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tuneforge.modelref import ModelNotFound, locate_model
from tuneforge.schemas import ConfigError, ConfigProblem, TrainingConfig, parse_training_config
from tuneforge.schemas.tasks import ACTIVE_STATUSES, name_problem
from tuneforge.service.errors import Conflict, InvalidInput, escape_like, get_or_not_found
from tuneforge.service.views import ExperimentDeleted, ExperimentView, experiment_view
from tuneforge.store import Database, Experiment, Task

SHARED = {"base_model": "model_name_or_path", "template": "template", "finetuning_type": "finetuning_type",
          "stage": "stage", "dataset": "dataset"}


@dataclass
class ExperimentRequest:
    name: str
    base_model: str
    dataset_path: str
    template: str = "default"
    finetuning_type: str = "lora"
    stage: str = "sft"
    description: str = ""
    owner_id: int | None = None


class ExperimentService:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, request: ExperimentRequest) -> ExperimentView:
        problems: list[ConfigProblem] = []
        if why := name_problem(request.name):
            problems.append(ConfigProblem("name", why))
        try:
            parse_training_config({"model_name_or_path": request.base_model, "dataset": request.dataset_path,
                                   "template": request.template, "finetuning_type": request.finetuning_type,
                                   "stage": request.stage})
        except ConfigError as exc:
            names = {"model_name_or_path": "baseModel", "dataset": "datasetPath", "finetuning_type": "finetuningType"}
            problems += [ConfigProblem(names.get(p.field, p.field), p.message) for p in exc.problems]
        try:
            locate_model(request.base_model)
        except ModelNotFound as exc:
            problems.append(ConfigProblem("baseModel", str(exc)))
        if problems:
            raise InvalidInput.of(problems)
        with self.db.session() as session:
            experiment = Experiment(name=request.name, description=request.description, owner_id=request.owner_id,
                                    base_model=request.base_model, template=request.template,
                                    finetuning_type=request.finetuning_type, stage=request.stage,
                                    dataset=request.dataset_path, created_at=time.time())
            session.add(experiment)
            try:
                session.flush()
            except IntegrityError as exc:
                raise Conflict(f"name: an experiment named {request.name!r} already exists",
                               [ConfigProblem("name", "already exists")]) from exc
            return experiment_view(experiment)

    def get(self, experiment_id: int) -> ExperimentView:
        with self.db.session() as session:
            experiment = _experiment(session, experiment_id)
            tasks = session.scalars(select(Task).where(Task.experiment_id == experiment_id).order_by(Task.created_at))
            return experiment_view(experiment, list(tasks))

    def list(self, owner_id: int | None = None, name: str | None = None) -> list[ExperimentView]:
        query = select(Experiment).order_by(Experiment.created_at.desc())
        if owner_id is not None:
            query = query.where(Experiment.owner_id == owner_id)
        if name:
            query = query.where(Experiment.name.like(f"%{escape_like(name)}%", escape="\\"))
        with self.db.session() as session:
            return [experiment_view(e) for e in session.scalars(query)]

    def delete(self, experiment_id: int) -> ExperimentDeleted:
        """Refused while one of its tasks is pending, running or stopping; its other tasks are kept, detached."""
        with self.db.session() as session:
            experiment = get_or_not_found(session, Experiment, experiment_id, "experiment")
            active = session.scalars(select(Task.name).where(Task.experiment_id == experiment_id,
                                                             Task.status.in_(ACTIVE_STATUSES))).first()
            if active is not None:
                raise Conflict(f"experiment {experiment.name!r} has an active task ({active!r}); stop it first",
                               [ConfigProblem("id", f"task {active!r} is still active")])
            members = select(func.count()).select_from(Task).where(Task.experiment_id == experiment_id)
            detached = session.scalar(members) or 0
            session.execute(update(Task).where(Task.experiment_id == experiment_id).values(experiment_id=None))
            session.delete(experiment)
        return ExperimentDeleted(id=experiment_id, deleted=True, tasks_detached=detached)


def experiment_defaults(session: Session, experiment_id: int) -> dict[str, Any]:
    """The training arguments a task added to this experiment inherits."""
    experiment = _experiment(session, experiment_id)
    return {key: getattr(experiment, attr) for attr, key in SHARED.items()}


def check_experiment_membership(session: Session, experiment_id: int, cfg: TrainingConfig) -> None:
    experiment = _experiment(session, experiment_id)
    problems = []
    for attr, key in SHARED.items():
        value = getattr(cfg, key)
        value = ",".join(value) if isinstance(value, list) else value
        if str(value) != str(getattr(experiment, attr)):
            problems.append(ConfigProblem(f"trainingArgs.{key}", f"is {value!r} but experiment {experiment.name!r} "
                                                                 f"uses {getattr(experiment, attr)!r}; tasks of one "
                                                                 "experiment differ only in hyper-parameters"))
    if problems:
        raise InvalidInput.of(problems)


def _experiment(session: Session, experiment_id: int) -> Experiment:
    return get_or_not_found(session, Experiment, experiment_id, "experiment", "experimentId")
