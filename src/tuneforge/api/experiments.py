"""Experiments (seed 001): createExperiment, getExperiment (final metrics side by side), getExperimentList."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from tuneforge.api.requests import CreateExperimentBody
from tuneforge.service.tasks.experiments import ExperimentRequest
from tuneforge.service.views import ExperimentView

router = APIRouter(prefix="/finetuning", tags=["experiments"])


@router.post("/createExperiment", response_model=ExperimentView, status_code=201,
             summary="Group tasks that share model, template, method, stage and dataset")
def create_experiment(request: Request, body: CreateExperimentBody) -> ExperimentView:
    return request.app.state.platform.experiments.create(ExperimentRequest(**body.model_dump()))


@router.get("/getExperiment", response_model=ExperimentView,
            summary="An experiment with its tasks' final metrics side by side; bestTaskId marks the best run")
def get_experiment(request: Request, id: int) -> ExperimentView:
    return request.app.state.platform.experiments.get(id)


@router.get("/getExperimentList", summary="Experiments, newest first")
def get_experiment_list(request: Request, owner_id: int | None = Query(None, alias="ownerId"),
                        name: str | None = None) -> dict[str, Any]:
    items = request.app.state.platform.experiments.list(owner_id, name)
    return {"total": len(items), "items": [e.model_dump(by_alias=True) for e in items]}
