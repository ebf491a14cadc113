"""Deployments (/deployments/…) and the OpenAI-compatible gateway (/v1/models, /v1/chat/completions) that routes
by model name to the deployment serving it, or serves a registered model on demand (service.models.on_demand)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, Query, Request
from fastapi import Body as JsonBody
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import Field

from tuneforge.api.deps import DeploymentsDep, PlatformDep
from tuneforge.api.requests import Body, IdBody, required_id
from tuneforge.api.views.deployments import (
    DeploymentDeleted,
    DeploymentDetail,
    DeploymentList,
    DeploymentLog,
    DeploymentView,
    OpenAIErrorBody,
    OpenAIModel,
    OpenAIModelList,
)
from tuneforge.service.models.deployments import DeploymentService
from tuneforge.service.models.on_demand import ModelEntry, OnDemandModels, OnDemandUnavailable

router = APIRouter(prefix="/deployments", tags=["deployments"])
gateway = APIRouter(prefix="/v1", tags=["openai"])


def get_on_demand(platform: PlatformDep) -> OnDemandModels:
    return platform.on_demand


OnDemandDep = Annotated[OnDemandModels, Depends(get_on_demand)]


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
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}},
                        status_code=status)


def _openai_model(entry: ModelEntry) -> OpenAIModel:
    return OpenAIModel(id=entry.name, created=int(entry.created), owned_by="tuneforge", loaded=entry.loaded)


@gateway.get("/models", response_model=OpenAIModelList,
             summary="Registered models (each served on demand) and running deployments, as OpenAI models")
def list_models(on_demand: OnDemandDep) -> OpenAIModelList:
    return OpenAIModelList(data=[_openai_model(entry) for entry in on_demand.models()])


@gateway.get("/models/{model:path}", response_model=OpenAIModel, summary="One model, as OpenAI retrieves it",
             responses={404: {"model": OpenAIErrorBody, "description": "No model or deployment of that name"}})
def get_model(model: str, on_demand: OnDemandDep) -> OpenAIModel | JSONResponse:
    entry = on_demand.model(model)
    if entry is None:
        return _openai_error(404, f"The model '{model}' does not exist", "model", "model_not_found")
    return _openai_model(entry)


# The answer is the serving engine's own (an OpenAI chat completion, or its event stream), relayed as it comes: no
# model of ours describes it, so this route declares none.
@gateway.post("/chat/completions", response_model=None,
              summary="OpenAI chat completions, routed by `model` to its deployment, or served on demand")
async def chat_completions(request: Request, deployments: DeploymentsDep, on_demand: OnDemandDep) -> Response:
    try:
        body = await request.json()
    except ValueError:
        return _openai_error(400, "the request body is not valid JSON")
    name = body.get("model") if isinstance(body, dict) else None
    if not isinstance(name, str):
        return _openai_error(400, "`model` is required: the name of a model or a deployment", "model")
    route = deployments.route(name)
    if route is None:
        return await _serve_on_demand(body, name, deployments, on_demand)
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


async def _serve_on_demand(body: dict[str, Any], name: str, deployments: DeploymentService,
                           on_demand: OnDemandModels) -> Response:
    """A registered model no deployment serves: loaded on first use, held until the answer has been sent."""
    try:
        lease = await on_demand.acquire(name)
    except OnDemandUnavailable as exc:
        return _openai_error(exc.status, exc.message, "model", exc.code)
    if lease is None:
        running = ", ".join(n for n, _ in deployments.running_names()) or "none"
        return _openai_error(404, f"no deployment or model named {name!r} (running deployments: {running}; "
                             "GET /v1/models lists every model)", "model", "model_not_found")
    body["model"] = lease.model
    try:
        return await _relay(body, lease.port, lease.release)
    except httpx.HTTPError as exc:
        return _openai_error(503, f"model {name!r} is not answering ({type(exc).__name__}); try again in a few "
                             "seconds", "model")


def _nothing() -> None:
    pass


async def _relay(body: dict[str, Any], port: int | None, done: Callable[[], None] = _nothing) -> Response:
    """The deployment's answer: read whole, or passed on chunk by chunk when the client asked for a stream. `done`
    is called once the answer has been read (an on-demand model's lease ends there)."""
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    # The serving process listens on loopback: never through HTTP(S)_PROXY, which would see every prompt.
    client = httpx.AsyncClient(timeout=httpx.Timeout(600, connect=5), trust_env=False)
    try:
        upstream = await client.send(client.build_request("POST", url, json=body), stream=True)
    except httpx.HTTPError:
        await client.aclose()
        done()
        raise
    if not body.get("stream"):
        try:
            content = await upstream.aread()
        finally:
            await upstream.aclose()
            await client.aclose()
            done()
        return JSONResponse(_json(content), status_code=upstream.status_code)

    async def relay() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        finally:
            await upstream.aclose()
            await client.aclose()
            done()

    return StreamingResponse(relay(), status_code=upstream.status_code,
                             media_type=upstream.headers.get("content-type", "text/event-stream"))


def _json(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return {"error": {"message": content.decode(errors="replace")[:500], "type": "server_error"}}
