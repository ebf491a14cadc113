"""Deployments in the seed's style (/deployments/…) and the OpenAI-compatible gateway (/v1/models,
/v1/chat/completions) that routes by model name to the deployment serving it."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi import Body as JsonBody
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import Field

from tuneforge.api.requests import Body
from tuneforge.schemas import ConfigProblem
from tuneforge.service.errors import InvalidInput

router = APIRouter(prefix="/deployments", tags=["deployments"])
gateway = APIRouter(prefix="/v1", tags=["openai"])


class CreateDeploymentBody(Body):
    name: str = Field(description="The name clients use as `model` in /v1/chat/completions.")
    model_id: int
    engine: str = Field(default="transformers", description="transformers (CPU or GPU, built in) | vllm (GPU hosts "
                        "with vLLM installed) | llamacpp (a GGUF model, llama-server on PATH)")
    options: dict[str, Any] = Field(default_factory=dict, description='Serving options as the engine names them, '
                                    'e.g. {"max_batch": 8} (transformers), {"gpu_memory_utilization": 0.8} (vllm).')


class DeploymentIdBody(Body):
    id: int


def _service(request: Request) -> Any:
    return request.app.state.platform.deployments


def _deployment_id(query_id: int | None, body: DeploymentIdBody | None) -> int:
    """`?id=N` or a JSON body {"id": N}, as the task operations take it (the query wins when both are given)."""
    deployment_id = query_id if query_id is not None else (body.id if body else None)
    if deployment_id is None:
        raise InvalidInput.of([ConfigProblem("id", "is required: ?id=N or a JSON body {\"id\": N}")])
    return deployment_id


@router.post("/createDeployment", status_code=201, summary="Serve a registered model (base or fine-tuned)")
def create_deployment(request: Request, body: CreateDeploymentBody) -> dict[str, Any]:
    return _service(request).create(body.name, body.model_id, body.options, body.engine)


@router.get("/getDeploymentList", summary="Deployments with their status")
def get_deployment_list(request: Request) -> dict[str, Any]:
    return _service(request).list()


@router.get("/getDeployment", summary="A deployment with its health")
def get_deployment(request: Request, id: int) -> dict[str, Any]:
    return _service(request).get(id)


@router.get("/getDeploymentLog", summary="The serving process's log")
def get_deployment_log(request: Request, id: int, tail: int = 100) -> dict[str, Any]:
    return _service(request).logs(id, tail)


@router.post("/stopDeployment", summary="Stop the serving process (?id=N or a JSON body {\"id\": N})")
def stop_deployment(request: Request, id: int | None = None,
                    body: DeploymentIdBody | None = JsonBody(None)) -> dict[str, Any]:
    return _service(request).stop(_deployment_id(id, body))


@router.post("/startDeployment",
             summary="Start a stopped or failed deployment again (?id=N or a JSON body {\"id\": N})")
def start_deployment(request: Request, id: int | None = None,
                     body: DeploymentIdBody | None = JsonBody(None)) -> dict[str, Any]:
    return _service(request).start(_deployment_id(id, body))


@router.delete("/deleteDeployment", summary="Stop and remove a deployment (?id=N or a JSON body {\"id\": N})")
def delete_deployment(request: Request, id: int | None = None,
                      body: DeploymentIdBody | None = JsonBody(None)) -> dict[str, Any]:
    return _service(request).delete(_deployment_id(id, body))


def _openai_error(status: int, message: str, param: str | None = None, code: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error", "param": param,
                                   "code": code}}, status_code=status)


@gateway.get("/models", summary="Running deployments, as OpenAI models")
def list_models(request: Request) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": name, "object": "model", "created": int(created),
                                        "owned_by": "tuneforge"} for name, created in
                                       _service(request).running_names()]}


@gateway.post("/chat/completions", summary="OpenAI chat completions, routed by `model` to its deployment")
async def chat_completions(request: Request) -> Any:
    try:
        body = await request.json()
    except ValueError:
        return _openai_error(400, "the request body is not valid JSON")
    name = body.get("model") if isinstance(body, dict) else None
    if not isinstance(name, str):
        return _openai_error(400, "`model` is required: the name of a deployment", "model")
    route = _service(request).route(name)
    if route is None:
        if _service(request).is_registered(name):
            return _openai_error(404, f"model {name!r} is registered but not deployed; deploy it first (POST "
                                 "/deployments/createDeployment, or `tuneforge deploy create`)", "model",
                                 "model_not_deployed")
        running = ", ".join(n for n, _ in _service(request).running_names()) or "none"
        return _openai_error(404, f"no deployment or model named {name!r} (running: {running})", "model",
                             "model_not_found")
    deployment, port, status = route
    body["model"] = deployment  # a registered model's name reaches its deployment under the deployment's name
    if status != "running":
        what = "wait until it is running" if status in ("starting", "restarting") else \
            "start it (POST /deployments/startDeployment)"
        return _openai_error(503, f"deployment {deployment!r} is {status}; {what}", "model")
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    client = httpx.AsyncClient(timeout=httpx.Timeout(600, connect=5))
    upstream = await client.send(client.build_request("POST", url, json=body), stream=True)
    if not body.get("stream"):
        content = await upstream.aread()
        await upstream.aclose()
        await client.aclose()
        return JSONResponse(_json(content), status_code=upstream.status_code)

    async def relay() -> Any:
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        finally:
            await upstream.aclose()
            await client.aclose()

    return StreamingResponse(relay(), status_code=upstream.status_code,
                             media_type=upstream.headers.get("content-type", "text/event-stream"))


def _json(content: bytes) -> Any:
    import json

    try:
        return json.loads(content)
    except ValueError:
        return {"error": {"message": content.decode(errors="replace")[:500], "type": "server_error"}}


