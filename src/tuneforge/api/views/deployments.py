"""Deployments as /deployments/* returns them, and the gateway's model list in OpenAI's own (snake_case) shape."""

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
    options: dict[str, Any]
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
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class OpenAIModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[OpenAIModel]
