"""The serving process's HTTP surface: /health, /v1/models and /v1/chat/completions (OpenAI-compatible, streamed
as server-sent events). Requests become Generations for the BatchScheduler; its events come back through an
asyncio queue per request."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse

from tuneforge.serving.batcher import BatchScheduler, Failed, Finished, Generation, StreamEvent, TextDelta
from tuneforge.serving.decoding import SamplingParams
from tuneforge.serving.protocol import (
    ApiError,
    ChatCompletionRequest,
    chunk_body,
    completion_body,
    completion_id,
    parse_request,
    usage,
)

log = logging.getLogger(__name__)

# tokenizers without a real limit report a huge sentinel (int(1e30)) as model_max_length
_NO_LIMIT = 10**9


@dataclass
class ServedModel:
    """The one model this process serves, ready to take requests."""

    name: str
    chat: Any  # tuneforge.engine.generate.ChatModel
    scheduler: BatchScheduler
    context_length: int
    context_source: str  # which setting the context length comes from, for error messages
    created: int

    @classmethod
    def start(cls, name: str, chat: Any, max_batch: int = 8) -> ServedModel:
        limits = {"max_position_embeddings": getattr(chat.model.config, "max_position_embeddings", None),
                  "the tokenizer's model_max_length": getattr(chat.tokenizer, "model_max_length", None)}
        known = {k: int(v) for k, v in limits.items() if isinstance(v, int) and 0 < v < _NO_LIMIT}
        source = min(known, key=known.__getitem__) if known else "no declared limit"
        scheduler = BatchScheduler(chat.model, chat.tokenizer, chat.stop_ids, max_batch=max_batch)
        scheduler.start()
        return cls(name, chat, scheduler, known.get(source, _NO_LIMIT), source, int(time.time()))

    def close(self) -> None:
        self.scheduler.close()


def create_app(name: str, load: Callable[[], ServedModel],
               on_load_error: Callable[[BaseException], None] | None = None) -> FastAPI:
    """The app answers /health with 503 until `load` (run in a thread at startup) has returned."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        thread = threading.Thread(target=_load_into, args=(app, load, on_load_error), daemon=True)
        thread.start()
        yield
        served: ServedModel | None = app.state.served
        if served is not None:
            served.close()

    app = FastAPI(title="tuneforge serving", lifespan=lifespan)
    app.state.name = name
    app.state.served = None
    app.state.load_error = None
    _add_error_handlers(app)
    _add_routes(app)
    return app


def _load_into(app: FastAPI, load: Callable[[], ServedModel],
               on_load_error: Callable[[BaseException], None] | None) -> None:
    try:
        app.state.served = load()
        log.info("serving %s", app.state.name)
    except BaseException as exc:
        log.exception("loading the model failed")
        app.state.load_error = str(exc)
        if on_load_error is not None:
            on_load_error(exc)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        param = ".".join(str(p) for p in first["loc"][1:]) or None
        return ApiError(400, f"{param}: {first['msg']}", param=param, code="invalid_value").response()


def _served(request: Request) -> ServedModel:
    served: ServedModel | None = request.app.state.served
    if served is None:
        error = request.app.state.load_error
        message = f"the model failed to load: {error}" if error else "the model is still loading; retry shortly"
        raise ApiError(503, message, kind="server_error", code="model_loading")
    return served


def _add_routes(app: FastAPI) -> None:
    @app.get("/health")
    async def health(request: Request) -> JSONResponse:
        served = request.app.state.served
        if served is None:
            error = request.app.state.load_error
            return JSONResponse({"status": "failed" if error else "loading", "model": request.app.state.name,
                                 "error": error}, status_code=503)
        return JSONResponse({"status": "ok", "model": served.name, "context_length": served.context_length,
                             "max_batch": served.scheduler.max_batch,
                             "largest_batch": served.scheduler.largest_batch})

    @app.get("/v1/models")
    async def list_models(request: Request) -> dict[str, Any]:
        return {"object": "list", "data": [_model_card(request)]}

    @app.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str, request: Request) -> dict[str, Any]:
        _check_name(request, model_id)
        return _model_card(request)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(request: Request) -> JSONResponse | StreamingResponse:
        try:
            body = await request.json()
        except ValueError as exc:
            raise ApiError(400, f"the request body is not valid JSON: {exc}") from exc
        if isinstance(body, dict) and isinstance(body.get("model"), str):
            _check_name(request, body["model"])
        chat_request = parse_request(body)
        served = _served(request)
        gen, events = _submit(served, chat_request)
        if chat_request.stream:
            return StreamingResponse(_sse(served, chat_request, gen, events), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        return await _complete(served, gen, events)


def _model_card(request: Request) -> dict[str, Any]:
    served = request.app.state.served
    created = served.created if served else int(time.time())
    return {"id": request.app.state.name, "object": "model", "created": created, "owned_by": "tuneforge"}


def _check_name(request: Request, model: str) -> None:
    name = request.app.state.name
    if model != name:
        raise ApiError(404, f"model: the model '{model}' does not exist here; this server serves '{name}' "
                       "(see GET /v1/models)", param="model", code="model_not_found")


def _submit(served: ServedModel, req: ChatCompletionRequest) -> tuple[Generation, asyncio.Queue[StreamEvent]]:
    prompt_ids = served.chat.prompt_ids(req.chat_messages())
    room = served.context_length - len(prompt_ids)
    if room <= 0:
        raise ApiError(400, f"messages: the prompt is {len(prompt_ids)} tokens, over the model's context length of "
                       f"{served.context_length} tokens ({served.context_source}); shorten the messages",
                       param="messages", code="context_length_exceeded")
    limit = req.token_limit
    if limit is not None and limit > room:
        param = "max_completion_tokens" if req.max_completion_tokens else "max_tokens"
        raise ApiError(400, f"{param}: the prompt is {len(prompt_ids)} tokens and {param} is {limit}, "
                       f"{len(prompt_ids) + limit} in all, over the model's context length of "
                       f"{served.context_length} tokens ({served.context_source}); ask for at most {room}",
                       param=param, code="context_length_exceeded")
    params = SamplingParams(
        max_new_tokens=limit or room,
        temperature=1.0 if req.temperature is None else req.temperature,
        top_p=1.0 if req.top_p is None else req.top_p,
        stop=req.stop_list, seed=req.seed,
    )
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[StreamEvent] = asyncio.Queue()

    def emit(event: StreamEvent) -> None:
        try:
            loop.call_soon_threadsafe(events.put_nowait, event)
        except RuntimeError:  # the event loop is gone (server shutting down)
            gen.cancelled.set()

    gen = Generation(prompt_ids, params, emit)
    served.scheduler.submit(gen)
    return gen, events


async def _complete(served: ServedModel, gen: Generation, events: asyncio.Queue[StreamEvent]) -> JSONResponse:
    parts: list[str] = []
    try:
        while True:
            event = await events.get()
            if isinstance(event, TextDelta):
                parts.append(event.text)
            elif isinstance(event, Finished):
                return JSONResponse(completion_body(completion_id(), served.name, "".join(parts), event.reason,
                                                    event.prompt_tokens, event.completion_tokens))
            else:
                raise ApiError(500, event.message, kind="server_error", code="generation_failed")
    finally:
        gen.cancelled.set()  # a client that went away stops costing decode steps


async def _sse(served: ServedModel, req: ChatCompletionRequest, gen: Generation,
               events: asyncio.Queue[StreamEvent]) -> AsyncIterator[str]:
    cid = completion_id()
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    try:
        yield _data(chunk_body(cid, served.name, {"role": "assistant", "content": ""}))
        while True:
            event = await events.get()
            if isinstance(event, TextDelta):
                yield _data(chunk_body(cid, served.name, {"content": event.text}))
                continue
            if isinstance(event, Finished):
                yield _data(chunk_body(cid, served.name, {}, event.reason))
                if include_usage:
                    yield _data(chunk_body(cid, served.name, None,
                                           usage_block=usage(event.prompt_tokens, event.completion_tokens)))
            elif isinstance(event, Failed):
                yield _data({"error": {"message": event.message, "type": "server_error", "param": None,
                                       "code": "generation_failed"}})
            yield "data: [DONE]\n\n"
            return
    finally:
        gen.cancelled.set()


def _data(body: dict[str, Any]) -> str:
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"
