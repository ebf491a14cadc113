"""The model registry in the seed's style: /models/registerModel, publishModel, getModelList, getModel, deleteModel."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import Field

from tuneforge.api.requests import Body
from tuneforge.service.models import PublishRequest

router = APIRouter(prefix="/models", tags=["models"])


class RegisterModelBody(Body):
    name: str = Field(description="Lowercase letters, digits and '-'; unique per owner.")
    source: str = Field(description="A model folder, a .gguf file, a hub id (online users) or 'bundled'.")
    description: str = ""
    owner_id: int | None = None


class PublishModelBody(Body):
    task_id: int
    name: str
    checkpoint_step: int | None = Field(default=None, description="A saved step; empty: the task's final model.")
    description: str = ""
    owner_id: int | None = None


@router.post("/registerModel", status_code=201, summary="Register a base model")
def register_model(request: Request, body: RegisterModelBody) -> dict[str, Any]:
    return request.app.state.platform.models.register_base(body.name, body.source, body.description, body.owner_id)


@router.post("/publishModel", status_code=201,
             summary="Publish a completed task (or a checkpoint of a completed / stopped one) as a model, with lineage")
def publish_model(request: Request, body: PublishModelBody) -> dict[str, Any]:
    return request.app.state.platform.models.publish(PublishRequest(**body.model_dump()))


@router.get("/getModelList", summary="Registered models, newest first (kind: base | finetuned)")
def get_model_list(request: Request, kind: str | None = None, owner_id: int | None = Query(None, alias="ownerId"),
                   name: str | None = None) -> dict[str, Any]:
    return request.app.state.platform.models.list(kind, owner_id, name)


@router.get("/getModel", summary="A model with its lineage: base, task, checkpoint step, datasets, config, metrics")
def get_model(request: Request, id: int) -> dict[str, Any]:
    return request.app.state.platform.models.get(id)


@router.delete("/deleteModel", summary="Remove a model from the registry (a task's output folder is kept)")
def delete_model(request: Request, id: int) -> dict[str, Any]:
    return request.app.state.platform.models.delete(id)
