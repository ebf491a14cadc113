"""Who may talk to the server, checked before any route runs:

1. the Host header must name this server (TrustedHostMiddleware): a web page that rebinds its own domain to
   127.0.0.1 sends its own name, and is refused;
2. a state-changing request (POST, PUT, PATCH, DELETE) from a browser must come from the console's own origin: a
   form on another site that POSTs to /finetuning/stopTask is refused (`Origin`, else `Sec-Fetch-Site`);
3. every other path needs an API key — `Authorization: Bearer tf-…`, or the console's sign-in cookie (which also
   carries the server-sent events the console follows) — and the request then acts as that key's user, which scopes
   every query (store.scope).

With auth off (a single user on loopback) every request acts as the local admin."""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import quote, urlsplit

import psutil
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tuneforge.api.errors import error_body
from tuneforge.settings import Settings
from tuneforge.store.scope import Actor, acting_as

KEY_COOKIE = "tuneforge_key"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")
WILDCARD_BINDS = ("0.0.0.0", "::", "")
# Open without a key: the probe, the API's own description, the sign-in page and what it needs to render.
PUBLIC_PATHS = frozenset({"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/",
                          "/console/login", "/console/logout", "/console/language", "/favicon.ico"})
PUBLIC_PREFIXES = ("/console/static/",)


def allowed_hosts(settings: Settings) -> list[str]:
    """Loopback names, the configured ones, and the address the server is bound to; bound to every interface, the
    machine's own names and addresses too (what a colleague types to reach it)."""
    hosts = [*LOOPBACK_NAMES, *settings.allowed_hosts]
    if settings.host not in WILDCARD_BINDS:
        return [*hosts, settings.host]
    names = {socket.gethostname(), socket.getfqdn()}
    addresses = {a.address.split("%")[0] for addrs in psutil.net_if_addrs().values() for a in addrs
                 if a.family in (socket.AF_INET, socket.AF_INET6)}
    return [*hosts, *sorted(names), *sorted(addresses)]


def install_guard(app: Any, settings: Settings) -> None:
    """Added last, so it runs first: Host, then Origin, then the key."""
    app.add_middleware(KeyGuard, settings=settings)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(settings), www_redirect=False)


def cross_site_reason(headers: Headers) -> str | None:
    """Why a state-changing request looks like it came from another site's page, or None."""
    origin = headers.get("origin")
    if origin is not None:
        if origin == "null":  # sandboxed frames, file:// pages
            return "the request comes from an opaque origin (Origin: null)"
        if urlsplit(origin).netloc.lower() != headers.get("host", "").lower():
            return f"the request comes from a page on {origin}, not from this server"
        return None
    if headers.get("sec-fetch-site") == "cross-site":
        return "the browser marked the request as cross-site"
    return None


class KeyGuard:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self._local_admin: Actor | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if request.method not in SAFE_METHODS and (why := cross_site_reason(request.headers)):
            await _refusal(request, 403, "cross_site_request", f"{why}; state-changing requests are accepted only "
                           "from the console's own pages or from clients with an API key")(scope, receive, send)
            return
        if _is_public(request.url.path):
            await self.app(scope, receive, send)
            return
        actor, problem = await run_in_threadpool(self._actor, request)
        if actor is None:
            await _unauthorized(request, problem)(scope, receive, send)
            return
        with acting_as(actor):
            await self.app(scope, receive, send)

    def _actor(self, request: Request) -> tuple[Actor | None, str]:
        users = request.app.state.platform.users
        if not self.settings.auth:
            if self._local_admin is None:
                self._local_admin = users.local_admin_actor()
            return self._local_admin, ""
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, secret = header.partition(" ")
            if scheme.lower() != "bearer" or not secret.strip():
                return None, "the Authorization header must be `Bearer <API key>`"
            return _checked(users.authenticate(secret.strip()))
        cookie = request.cookies.get(KEY_COOKIE)
        if cookie:
            return _checked(users.authenticate(cookie))
        return None, "an API key is required: send `Authorization: Bearer <key>` (`tuneforge users keys create`)"


def _checked(actor: Actor | None) -> tuple[Actor | None, str]:
    return actor, "" if actor else "the API key is not valid: it is unknown, revoked, or its user is disabled"


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _unauthorized(request: Request, problem: str) -> Response:
    path = request.url.path
    if path.startswith("/console") and request.method == "GET" and "authorization" not in request.headers:
        target = path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/console/login?next={quote(target)}", status_code=303)
    return _refusal(request, 401, "invalid_api_key" if path.startswith("/v1/") else "unauthorized", problem,
                    {"WWW-Authenticate": "Bearer"})


def _refusal(request: Request, status: int, code: str, message: str,
             headers: dict[str, str] | None = None) -> JSONResponse:
    if request.url.path.startswith("/v1/"):  # OpenAI's clients read OpenAI's error shape
        body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
    else:
        body = error_body(code, message)
    return JSONResponse(body, status_code=status, headers=headers)
