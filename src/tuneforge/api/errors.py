"""Every error is {"error": {"code", "message", "details"}} with a fitting 4xx; bad input never becomes a 500."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from tuneforge.service.errors import ServiceError

log = logging.getLogger(__name__)


def error_body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or []}}


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
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return JSONResponse(error_body("internal", f"{type(exc).__name__}: {exc}; see the server log"),
                            status_code=500)


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
