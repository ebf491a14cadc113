"""Deployments (/deployments/…) and the OpenAI-compatible gateway (/v1/models, /v1/chat/completions) that routes
by model name to the deployment serving it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import APIRouter, Query, Request
from fastapi import Body as JsonBody
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import Field

from tuneforge.api.deps import DeploymentsDep
from tuneforge.api.requests import Body, IdBody, required_id
from tuneforge.api.views.deployments import (
    DeploymentDeleted,
    DeploymentDetail,
    DeploymentList,
    DeploymentLog,
    DeploymentView,
    OpenAIModel,
    OpenAIModelList,
)
from tuneforge.service.models.deployments import DeploymentService

router = APIRouter(prefix="/deployments", tags=["deployments"])
gateway = APIRouter(prefix="/v1", tags=["openai"])


class CreateDeploymentBody(Body):
    name: str = Field(description="The name clients use as `model` in /v1/chat/completions.")
    model_id: int
    engine: str = Field(default="transformers", description="transformers (CPU or GPU, built in) | vllm (GPU hosts "
                        "with vLLM installed) | llamacpp (a GGUF model, llama-server on PATH)")
    options: dict[str, Any] = Field(default_factory=dict, description='Serving options as the engine names them, '
                                    'e.g. {"max_batch": 8} (transformers), {"gpu_memory_utilization": 0.8} (vllm).')


class DeploymentIdBody(IdBody):
    pass


@router.post("/createDeployment", response_model=DeploymentView, status_code=201,
             summary="Serve a registered model (base or fine-tuned)")
def create_deployment(deployments: DeploymentsDep, body: CreateDeploymentBody) -> DeploymentView:
    return DeploymentView.model_validate(deployments.create(body.name, body.model_id, body.options, body.engine))


@router.get("/getDeploymentList", response_model=DeploymentList, summary="Deployments with their status")
def get_deployment_list(deployments: DeploymentsDep) -> DeploymentList:
    return DeploymentList.model_validate(deployments.list())


@router.get("/getDeployment", response_model=DeploymentDetail, summary="A deployment with its health")
def get_deployment(deployments: DeploymentsDep, id: int) -> DeploymentDetail:
    return DeploymentDetail.model_validate(deployments.get(id))


@router.get("/getDeploymentLog", response_model=DeploymentLog, summary="The serving process's log")
def get_deployment_log(deployments: DeploymentsDep, id: int,
                       tail: int = Query(100, ge=1, le=100_000)) -> DeploymentLog:
    return DeploymentLog.model_validate(deployments.logs(id, tail))


@router.post("/stopDeployment", response_model=DeploymentView,
             summary="Stop the serving process (?id=N or a JSON body {\"id\": N})")
def stop_deployment(deployments: DeploymentsDep, id: int | None = None,
                    body: DeploymentIdBody | None = JsonBody(None)) -> DeploymentView:
    return DeploymentView.model_validate(deployments.stop(required_id(id, body)))


@router.post("/startDeployment", response_model=DeploymentView,
             summary="Start a stopped or failed deployment again (?id=N or a JSON body {\"id\": N})")
def start_deployment(deployments: DeploymentsDep, id: int | None = None,
                     body: DeploymentIdBody | None = JsonBody(None)) -> DeploymentView:
    return DeploymentView.model_validate(deployments.start(required_id(id, body)))


@router.delete("/deleteDeployment", response_model=DeploymentDeleted,
               summary="Stop and remove a deployment (?id=N or a JSON body {\"id\": N})")
def delete_deployment(deployments: DeploymentsDep, id: int | None = None,
                      body: DeploymentIdBody | None = JsonBody(None)) -> DeploymentDeleted:
    return DeploymentDeleted.model_validate(deployments.delete(required_id(id, body)))


def _openai_error(status: int, message: str, param: str | None = None, code: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error", "param": param,
                                   "code": code}}, status_code=status)


@gateway.get("/models", response_model=OpenAIModelList, summary="Running deployments, as OpenAI models")
def list_models(deployments: DeploymentsDep) -> OpenAIModelList:
    return OpenAIModelList(data=[OpenAIModel(id=name, created=int(created), owned_by="tuneforge")
                                 for name, created in deployments.running_names()])


# The answer is the serving engine's own (an OpenAI chat completion, or its event stream), relayed as it comes: no
# model of ours describes it, so this route declares none.
@gateway.post("/chat/completions", response_model=None,
              summary="OpenAI chat completions, routed by `model` to its deployment")
async def chat_completions(request: Request, deployments: DeploymentsDep) -> Response:
    try:
        body = await request.json()
    except ValueError:
        return _openai_error(400, "the request body is not valid JSON")
    name = body.get("model") if isinstance(body, dict) else None
    if not isinstance(name, str):
        return _openai_error(400, "`model` is required: the name of a deployment", "model")
    route = deployments.route(name)
    if route is None:
        return _not_served(deployments, name)
    deployment, port, status = route
    body["model"] = deployment  # a registered model's name reaches its deployment under the deployment's name
    if status != "running":
        what = "wait until it is running" if status in ("starting", "restarting") else \
            "start it (POST /deployments/startDeployment)"
        return _openai_error(503, f"deployment {deployment!r} is {status}; {what}", "model")
    try:
        return await _relay(body, port)
    except httpx.HTTPError as exc:  # the process died since the watcher last looked: the watcher restarts it
        return _openai_error(503, f"deployment {deployment!r} is not answering ({type(exc).__name__}); it is "
                             "restarted automatically — try again in a few seconds", "model")


def _not_served(deployments: DeploymentService, name: str) -> JSONResponse:
    if deployments.is_registered(name):
        return _openai_error(404, f"model {name!r} is registered but not deployed; deploy it first (POST "
                             "/deployments/createDeployment, or `tuneforge deploy create`)", "model",
                             "model_not_deployed")
    running = ", ".join(n for n, _ in deployments.running_names()) or "none"
    return _openai_error(404, f"no deployment or model named {name!r} (running: {running})", "model",
                         "model_not_found")


async def _relay(body: dict[str, Any], port: int | None) -> Response:
    """The deployment's answer: read whole, or passed on chunk by chunk when the client asked for a stream."""
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    # The serving process listens on loopback: never through HTTP(S)_PROXY, which would see every prompt.
    client = httpx.AsyncClient(timeout=httpx.Timeout(600, connect=5), trust_env=False)
    try:
        upstream = await client.send(client.build_request("POST", url, json=body), stream=True)
    except httpx.HTTPError:
        await client.aclose()
        raise
    if not body.get("stream"):
        content = await upstream.aread()
        await upstream.aclose()
        await client.aclose()
        return JSONResponse(_json(content), status_code=upstream.status_code)

    async def relay() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        finally:
            await upstream.aclose()
            await client.aclose()

    return StreamingResponse(relay(), status_code=upstream.status_code,
                             media_type=upstream.headers.get("content-type", "text/event-stream"))


def _json(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return {"error": {"message": content.decode(errors="replace")[:500], "type": "server_error"}}
