"""Deployments as /deployments/* returns them, and the gateway's models and errors in OpenAI's own (snake_case)
shape."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from tuneforge.service.views import View


class DeploymentView(View):
    id: int
    name: str = Field(description="The name clients use as `model` in /v1/chat/completions.")
    model_id: int
    model_name: str
    engine: str = Field(description="transformers | vllm | llamacpp")
    status: str = Field(description="starting | running | restarting | failed | stopped")
    port: int | None
    pid: int | None
    restarts: int = Field(description="Restarts after crashes since the last start.")
    error_message: str | None
    command: list[str] | None
    log_path: str
    options: dict[str, Any] = Field(description="The engine's options, as given to createDeployment.")
    on_demand: bool = Field(description="Started by /v1/chat/completions for a model nobody deployed; unloaded when "
                            "idle or when another needs its memory (settings on_demand_*).")
    devices: list[int] = Field(default_factory=list, description="The GPUs it holds while starting, running or "
                               "restarting (NVML indexes, as /system/gpus lists them); empty on a host without GPUs.")
    created_at: float
    started_at: float | None


class DeploymentDetail(DeploymentView):
    healthy: bool = Field(description="Whether the serving process answers its health check now.")


class DeploymentList(View):
    total: int
    items: list[DeploymentView]


class DeploymentLog(View):
    id: int
    lines: list[str]


class DeploymentDeleted(View):
    id: int
    name: str
    deleted: bool


class OpenAIModel(BaseModel):
    id: str = Field(description="What clients send as `model`: a registered model's name, or a deployment's.")
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    loaded: bool = Field(description="A serving process answers this model now; if not, the first request loads "
                         "it (a registered model served on demand).")


class OpenAIModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[OpenAIModel]


class OpenAIErrorInfo(BaseModel):
    message: str
    type: str = Field(description="invalid_request_error | server_error")
    param: str | None
    code: str | None = Field(description="e.g. model_not_found, model_failed_to_load")


class OpenAIErrorBody(BaseModel):
    """The gateway's errors, in OpenAI's shape (what its clients parse)."""

    error: OpenAIErrorInfo
