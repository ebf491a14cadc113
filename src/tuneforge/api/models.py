"""The model registry in the seed's style: /models/registerModel, publishModel, getModelList, getModel, deleteModel."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import Field

from tuneforge.api.requests import Body
from tuneforge.service.models.models import PublishRequest

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


class ExportModelBody(Body):
    id: int = Field(description="The registered model to export.")
    dtype: str = Field(default="auto", description="auto | float32 | float16 | bfloat16")
    max_shard_size_gb: float = Field(default=5.0, description="Largest safetensors file, in GB.")
    safe_serialization: bool = True
    merge: bool | None = Field(default=None, description="Merge the LoRA adapter (default: yes when there is one).")
    gguf: str | None = Field(default=None, description="Also write GGUF: f16 | q8_0 (llama.cpp).")
    hub_repo_id: str | None = Field(default=None, description="Push to this Hugging Face Hub repo (owner/name).")
    output_dir: str | None = Field(default=None, description="Default: HOME/exported/<model>-<job>.")


@router.post("/exportModel", status_code=201, summary="Export a model in the background (merge, shards, dtype, "
             "GGUF, hub push); follow it with getExport")
def export_model(request: Request, body: ExportModelBody) -> dict[str, Any]:
    options = body.model_dump(exclude={"id"}, exclude_none=True)
    return request.app.state.platform.exports.create(body.id, options)


@router.get("/getExport", summary="An export job: status, stage, percentage, files and sizes")
def get_export(request: Request, id: str) -> dict[str, Any]:
    return request.app.state.platform.exports.get(id)


@router.get("/getExportList", summary="Export jobs, newest first")
def get_export_list(request: Request) -> dict[str, Any]:
    return request.app.state.platform.exports.list()


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
