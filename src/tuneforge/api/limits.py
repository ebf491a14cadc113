"""Bounded cost per request: what a client sends is measured before it is parsed, so no body or query can make the
server spend unbounded memory or time. Refusals name the limit (413) or the parameter (422)."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from tuneforge.settings import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Ids are INTEGER columns (32-bit on PostgreSQL): anything larger names no row, and would overflow the driver.
MAX_ID = 2**31 - 1
# Every other integer must at least fit SQLite's and PostgreSQL's 64-bit integers.
MAX_INT = 2**63 - 1
ID_PARAMS = frozenset({"id", "version"})  # and every name ending in Id / _id (userId, taskId, …): 32-bit columns
MAX_PATH_BYTES = 4096  # PATH_MAX on Linux
MAX_NAME_BYTES = 255  # NAME_MAX: one path component
# A key ends where a closing quote meets a colon; counting them is a cheap upper bound on the keys of compact JSON.
KEY_END = re.compile(rb'"\s*:')
INTEGER = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class Limits:
    json_body_bytes: int
    upload_bytes: int
    json_keys: int
    training_args: int
    json_depth: int
    description_chars: int

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(settings.max_json_body_bytes, settings.max_upload_bytes, settings.max_json_keys,
                   settings.max_training_args, settings.max_json_depth, settings.max_description_chars)


_current: ContextVar[Limits | None] = ContextVar("tuneforge_limits", default=None)


def current_limits() -> Limits:
    """The limits of the app serving this request (request bodies are validated with them)."""
    return _current.get() or Limits.of(Settings())


def limit_error(status: int, code: str, field: str, message: str, openai: bool = False) -> bytes:
    """The native error body, or OpenAI's for /v1 (its clients read `error.message` and `error.param`)."""
    text = f"{field}: {message}" if field else message
    if openai:
        body: dict[str, Any] = {"error": {"message": text, "type": "invalid_request_error", "param": field or None,
                                          "code": code}}
    else:
        body = {"error": {"code": code, "message": text, "details": [{"field": field, "message": message}]}}
    return json.dumps(body).encode()


def query_problem(query_string: bytes, int_params: frozenset[str], digits_only: bool = True
                  ) -> tuple[str, str] | None:
    """The first query parameter no route can take: a NUL byte, or an integer no database column holds.
    `digits_only`: an API route, whose integers are digits as its OpenAPI document says (the console's pages read
    their own parameters and treat a step like "1.5" as none)."""
    try:
        pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    except ValueError:
        return "", "the query string is malformed"
    for name, value in pairs:
        if "\x00" in value or "\x00" in name:
            return name, "must not contain NUL bytes"
        number = _as_number(value) if name in int_params else None
        if number is None:
            continue  # no number: the route's own validation answers (a name may be a string elsewhere)
        if digits_only and not INTEGER.fullmatch(value):
            # The route's lax parsing would take "2.0", " 2" or "2_000"; the OpenAPI document says digits.
            return name, f"must be a whole number written in digits, like 3 (got {value[:40]!r})"
        bound = MAX_ID if name in ID_PARAMS or name.endswith(("Id", "_id")) else MAX_INT
        if abs(number) > bound:
            return name, f"is out of range (at most {bound})"
    return None


def _as_number(value: str) -> float | None:
    """What the route's int parsing may make of the text ("2_147_483_648", " 2147483648", "2147483648.0" too);
    None when it is no number (the route's own validation answers that)."""
    text = value.strip().replace("_", "")
    if INTEGER.fullmatch(text):
        return float("inf") if len(text) > 30 else float(int(text))  # int() refuses over 4300 digits anyway
    try:
        number = float(text)
    except ValueError:
        return None
    return number if number == number else None  # NaN is no number


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than {limit} bytes")
        self.limit = limit


class RequestLimits:
    """ASGI middleware: query parameters, Content-Length, the bytes actually received and, for JSON, the number of
    keys, all checked before the app parses anything."""

    def __init__(self, app: ASGIApp, settings: Settings, upload_paths: frozenset[str],
                 int_params: frozenset[str]) -> None:
        self.app = app
        self.limits = Limits.of(settings)
        self.upload_paths = upload_paths
        self.int_params = int_params

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = _current.set(self.limits)
        try:
            await self._handle(scope, receive, send)
        finally:
            _current.reset(token)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        console, openai = path.startswith("/console"), path.startswith("/v1/")
        if problem := query_problem(scope.get("query_string", b""), self.int_params, digits_only=not console):
            # OpenAI answers a parameter it cannot take with 400; the native API with 422
            status = 400 if openai else 422
            await _answer(send, status, limit_error(status, "invalid_input", *problem, openai=openai))
            return
        upload = scope["path"] in self.upload_paths
        limit = self.limits.upload_bytes if upload else self.limits.json_body_bytes
        length = _content_length(scope)
        if length is not None and length > limit:
            await _answer(send, 413, limit_error(413, "body_too_large", "", f"the request body ({length} bytes) is "
                                                 f"larger than the limit of {limit} bytes", openai=openai))
            return
        if upload or not _is_json(scope):
            await self.app(scope, _counting(receive, limit), send)
            return
        try:
            body = await _read_body(receive, limit)
        except BodyTooLarge as exc:
            await _answer(send, 413, limit_error(413, "body_too_large", "", str(exc), openai=openai))
            return
        keys = len(KEY_END.findall(body))
        if keys > self.limits.json_keys:
            await _answer(send, 413, limit_error(413, "too_many_keys", "", f"the JSON body has about {keys} keys; "
                                                 f"the limit is {self.limits.json_keys}", openai=openai))
            return
        await self.app(scope, _replay(body, receive), send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _is_json(scope: Scope) -> bool:
    """FastAPI reads a body without a Content-Type as JSON too."""
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return b"json" in value.lower()
    return True


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()  # http.disconnect, when the client goes away
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _counting(receive: Receive, limit: int) -> Receive:
    """A chunked body (no Content-Length) is counted as it arrives; the app's handler answers BodyTooLarge with 413."""
    size = 0

    async def counting() -> Message:
        nonlocal size
        message = await receive()
        size += len(message.get("body", b""))
        if size > limit:
            raise BodyTooLarge(limit)
        return message

    return counting


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def path_problem(value: str) -> str | None:
    """Why a path string can never name a file: a NUL byte, more than PATH_MAX bytes, a component over NAME_MAX."""
    if "\x00" in value:
        return "must not contain NUL bytes"
    encoded = value.encode("utf-8", errors="surrogatepass")
    if len(encoded) > MAX_PATH_BYTES:
        return f"is longer than {MAX_PATH_BYTES} bytes"
    if any(len(part) > MAX_NAME_BYTES for part in encoded.split(b"/")):
        return f"has a component longer than {MAX_NAME_BYTES} bytes"
    if value.startswith("~") and not value.startswith(("~/", "~\\")) and value != "~":
        return "must not start with ~user (only ~/ for the server's home is expanded)"
    return None


def depth(value: Any) -> int:
    """How deeply a JSON value nests (a scalar is 0, {} or [] is 1)."""
    stack = [(value, 0)]
    deepest = 0
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            stack += [(v, level + 1) for v in item.values()]
            deepest = max(deepest, level + 1)
        elif isinstance(item, list):
            stack += [(v, level + 1) for v in item]
            deepest = max(deepest, level + 1)
    return deepest
