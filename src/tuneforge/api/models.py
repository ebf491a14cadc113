"""The model registry: /models/registerModel, publishModel, getModelList, getModel, deleteModel, and export jobs
(exportModel, getExport, getExportList)."""

from __future__ import annotations

from fastapi import APIRouter, Query
from pydantic import Field

from tuneforge.api.deps import ExportsDep, ModelsDep
from tuneforge.api.requests import Body
from tuneforge.api.views.models import ExportJob, ExportList, ModelDeleted, ModelList, ModelRecord, ModelView
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
    gguf: str | None = Field(default=None, description="Also write GGUF for llama.cpp: f16 | q8_0 | q4_K_M | q5_K_M "
                             "(the K-quants need llama-cpp-python on the server: pip install 'tuneforge[gguf]').")
    quantization_bit: int | None = Field(
        default=None, description="4 | 8: quantize the weights with GPTQ, saved in the compressed-tensors format "
                                  "vLLM serves (needs compressed-tensors on the server: pip install 'tuneforge[gptq]')."
    )
    quantization_dataset: str | None = Field(
        default=None, description="Calibration data for quantizationBit: a managed dataset (name or name@version), a "
                                  "bundled one, or a file / folder in the allowed folders."
    )
    quantization_nsamples: int | None = Field(default=None, description="Calibration samples (default 128).")
    quantization_maxlen: int | None = Field(default=None, description="Tokens per calibration sample (default 1024).")
    quantization_group_size: int | None = Field(
        default=None, description="Input columns per scale: 32 | 64 | 128 (default) | 256, or -1 for one per row."
    )
    hub_repo_id: str | None = Field(default=None, description="Push to this Hugging Face Hub repo (owner/name).")
    output_dir: str | None = Field(default=None, description="Default: HOME/exported/<model>-<job>.")


@router.post("/exportModel", response_model=ExportJob, status_code=201,
             summary="Export a model in the background (merge, shards, dtype, GPTQ, GGUF, hub push); follow it "
             "with getExport")
def export_model(exports: ExportsDep, body: ExportModelBody) -> ExportJob:
    options = body.model_dump(exclude={"id"}, exclude_none=True)
    return ExportJob.model_validate(exports.create(body.id, options))


@router.get("/getExport", response_model=ExportJob, summary="An export job: status, stage, percentage, files and sizes")
def get_export(exports: ExportsDep, id: str) -> ExportJob:
    return ExportJob.model_validate(exports.get(id))


@router.get("/getExportList", response_model=ExportList, summary="Export jobs, newest first")
def get_export_list(exports: ExportsDep) -> ExportList:
    return ExportList.model_validate(exports.list())


@router.post("/registerModel", response_model=ModelView, status_code=201, summary="Register a base model")
def register_model(models: ModelsDep, body: RegisterModelBody) -> ModelView:
    return ModelView.model_validate(models.register_base(body.name, body.source, body.description, body.owner_id))


@router.post("/publishModel", response_model=ModelView, status_code=201,
             summary="Publish a completed task (or a checkpoint of a completed / stopped one) as a model, with lineage")
def publish_model(models: ModelsDep, body: PublishModelBody) -> ModelView:
    return ModelView.model_validate(models.publish(PublishRequest(**body.model_dump())))


@router.get("/getModelList", response_model=ModelList,
            summary="Registered models, newest first (kind: base | finetuned)")
def get_model_list(models: ModelsDep, kind: str | None = None, owner_id: int | None = Query(None, alias="ownerId"),
                   name: str | None = None) -> ModelList:
    return ModelList.model_validate(models.list(kind, owner_id, name))


@router.get("/getModel", response_model=ModelRecord,
            summary="A model with its lineage: base, task, checkpoint step, datasets, config, metrics")
def get_model(models: ModelsDep, id: int) -> ModelRecord:
    return ModelRecord.model_validate(models.get(id))


@router.delete("/deleteModel", response_model=ModelDeleted,
               summary="Remove a model from the registry (a task's output folder is kept)")
def delete_model(models: ModelsDep, id: int) -> ModelDeleted:
    return ModelDeleted.model_validate(models.delete(id))
