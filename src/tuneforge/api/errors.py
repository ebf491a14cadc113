"""Every error is {"error": {"code", "message", "details"}} with a fitting 4xx; bad input never becomes a 500."""

from __future__ import annotations

import errno
import inspect
import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from tuneforge.api.limits import BodyTooLarge
from tuneforge.service.errors import ServiceError
from tuneforge.store.database import DatabaseUnavailable
from tuneforge.store.scope import NotPermitted

log = logging.getLogger(__name__)


def error_body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or []}}


class ErrorDetail(BaseModel):
    field: str = Field(description="The request field at fault (API name, e.g. trainingArgs.lora_rank); may be empty.")
    message: str


class ErrorInfo(BaseModel):
    code: str = Field(description="Machine-readable kind, e.g. invalid_input, not_found, conflict, body_too_large.")
    message: str
    details: list[ErrorDetail]


class ErrorBody(BaseModel):
    """Every error the API answers: {"error": {"code", "message", "details": [{"field", "message"}]}}."""

    error: ErrorInfo


# Declared on every route (app.include_router): the error body for each status the API can answer with.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description} for status, description in (
        (400, "Malformed request (e.g. invalid JSON)"), (401, "No valid API key"),
        (403, "Not allowed: a cross-site request, or an admin's operation"), (404, "No such resource"),
        (409, "The resource's state forbids it"), (413, "The request exceeds a size limit"),
        (422, "Invalid input; details name each field"))}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(_: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, exc.details), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [_detail(e) for e in exc.errors()]
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            return JSONResponse(error_body("malformed_json", "the request body is not valid JSON: "
                                           f"{details[0]['message']}", details), status_code=400)
        first = details[0] if details else {"field": "", "message": "invalid request"}
        more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
        return JSONResponse(error_body("invalid_input", f"{first['field']}: {first['message']}{more}", details),
                            status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        code = {400: "malformed_body", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code)

    @app.exception_handler(BodyTooLarge)
    async def body_too_large(_: Request, exc: BodyTooLarge) -> JSONResponse:
        return JSONResponse(error_body("body_too_large", str(exc)), status_code=413)

    @app.exception_handler(NotPermitted)
    async def not_permitted(_: Request, exc: NotPermitted) -> JSONResponse:
        return JSONResponse(error_body("forbidden", str(exc)), status_code=403)

    @app.exception_handler(DatabaseUnavailable)
    async def database_unavailable(_: Request, exc: DatabaseUnavailable) -> JSONResponse:
        return JSONResponse(error_body("database_unavailable", str(exc)), status_code=503)

    @app.exception_handler(ValueError)
    async def value_error(request: Request, exc: ValueError) -> JSONResponse:
        # os / sqlite refuse strings with NUL bytes with ValueError; bodies and queries are checked at the edge,
        # this catches a form field or path that slipped past
        if "null" in str(exc).lower():
            return JSONResponse(error_body("invalid_input", f"a value contains a NUL byte: {exc}"), status_code=422)
        return await unexpected(request, exc)

    @app.exception_handler(RuntimeError)
    async def runtime_error(request: Request, exc: RuntimeError) -> JSONResponse:
        # Path.expanduser raises RuntimeError for "~nosuchuser/..."; anything else is a server fault.
        if "home directory" in str(exc):
            return JSONResponse(error_body("invalid_input", f"a path names an unknown user's home: {exc}"),
                                status_code=422)
        return await unexpected(request, exc)

    @app.exception_handler(OSError)
    async def os_error(request: Request, exc: OSError) -> JSONResponse:
        if exc.errno == errno.ENAMETOOLONG:
            return JSONResponse(error_body("invalid_input", "a path is too long (a component over 255 bytes)"),
                                status_code=422)
        return await unexpected(request, exc)

    @app.exception_handler(RecursionError)
    async def too_deep(_: Request, exc: RecursionError) -> JSONResponse:
        return JSONResponse(error_body("too_deep", "the request nests too deeply"), status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return JSONResponse(error_body("internal", f"{type(exc).__name__}: {exc}; see the server log"),
                            status_code=500)

    for kind, handler in list(app.exception_handlers.items()):
        app.exception_handlers[kind] = _openai_shaped(handler)


def _openai_shaped(handler: Any) -> Any:
    """The same error on /v1 in OpenAI's shape, which OpenAI's clients read: {"error": {"message", "type", "param",
    "code"}}, `param` the first field at fault."""

    async def shaped(request: Request, exc: Exception) -> Any:
        response = handler(request, exc)
        response = await response if inspect.isawaitable(response) else response
        if not request.url.path.startswith("/v1/") or not isinstance(response, JSONResponse):
            return response
        error = json.loads(bytes(response.body)).get("error")
        if not isinstance(error, dict) or "details" not in error:  # already OpenAI's shape
            return response
        param = next((d.get("field") for d in error["details"] if isinstance(d, dict) and d.get("field")), None)
        kind = "server_error" if response.status_code >= 500 else "invalid_request_error"
        body = {"error": {"message": error.get("message", ""), "type": kind, "param": param, "code": error.get("code")}}
        return JSONResponse(body, status_code=response.status_code)

    return shaped


def _detail(error: dict[str, Any]) -> dict[str, str]:
    loc = [str(part) for part in error.get("loc", ()) if part not in ("body", "query")]
    message = error.get("msg", "invalid")
    if error.get("type") == "extra_forbidden":
        message = "unknown field; check the spelling (fields are camelCase, e.g. baseModel, trainingArgs)"
    elif error.get("type") == "json_invalid":
        ctx = error.get("ctx") or {}
        message = f"{ctx.get('error', message)} at position {loc[-1] if loc else '?'}"
        loc = []
    return {"field": ".".join(loc), "message": message}
