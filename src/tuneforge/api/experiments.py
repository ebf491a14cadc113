"""Experiments: createExperiment, getExperiment (final metrics side by side), getExperimentList, deleteExperiment."""

from __future__ import annotations

from fastapi import APIRouter, Query

from tuneforge.api.deps import ExperimentsDep
from tuneforge.api.requests import CreateExperimentBody
from tuneforge.service.tasks.experiments import ExperimentRequest
from tuneforge.service.views import ExperimentDeleted, ExperimentList, ExperimentView

router = APIRouter(prefix="/finetuning", tags=["experiments"])


@router.post("/createExperiment", response_model=ExperimentView, status_code=201,
             summary="Group tasks that share model, template, method, stage and dataset")
def create_experiment(experiments: ExperimentsDep, body: CreateExperimentBody) -> ExperimentView:
    return experiments.create(ExperimentRequest(**body.model_dump()))


@router.get("/getExperiment", response_model=ExperimentView,
            summary="An experiment with its tasks' final metrics side by side; bestTaskId marks the best run")
def get_experiment(experiments: ExperimentsDep, id: int) -> ExperimentView:
    return experiments.get(id)


@router.get("/getExperimentList", response_model=ExperimentList, summary="Experiments, newest first")
def get_experiment_list(experiments: ExperimentsDep, owner_id: int | None = Query(None, alias="ownerId"),
                        name: str | None = None) -> ExperimentList:
    items = experiments.list(owner_id, name)
    return ExperimentList(total=len(items), items=items)


@router.delete("/deleteExperiment", response_model=ExperimentDeleted,
               summary="Delete an experiment; refused while one of its tasks is active; its tasks are kept")
def delete_experiment(experiments: ExperimentsDep, id: int) -> ExperimentDeleted:
    return experiments.delete(id)
