"""What every OpenAI-compatible router under /v1 shares: its route class (a parameter of the wrong type or range is
OpenAI's 400 naming it, never FastAPI's 422, which OpenAI does not send) and its declared error responses."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from tuneforge.schemas import ConfigProblem
from tuneforge.service.openai.errors import InvalidRequest

UNION_TAGS = frozenset({"int", "float", "str", "bool", "dict", "list", "none"})


class OpenAIRoute(APIRoute):
    """A route whose request validation errors are OpenAI's 400, naming the first field at fault."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                problems = [ConfigProblem(_param(e.get("loc", ())), str(e.get("msg", "invalid"))) for e in exc.errors()]
                raise InvalidRequest.of(problems or [ConfigProblem("", "invalid request")]) from exc

        return route


def _param(loc: tuple[Any, ...] | list[Any]) -> str:
    """A validation error's location as OpenAI names a parameter: method.dpo.hyperparameters.beta, integrations[0];
    pydantic's union member tags (int, literal['auto']) left out."""
    param = ""
    for part in loc[1:] if loc and loc[0] in ("body", "query", "path") else loc:
        if isinstance(part, int):
            param += f"[{part}]"
        elif isinstance(part, str) and part.isidentifier() and part not in UNION_TAGS:
            param += f".{part}" if param else part
    return param
