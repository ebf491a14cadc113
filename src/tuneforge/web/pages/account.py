"""Signing in and out, and the users page: your API keys (made, shown once, revoked) and, for admins, the users.

`tuneforge serve` prints a sign-in link with the local admin's key (/console/login?key=…): opening it sets the
sign-in cookie and drops the key from the address bar. The cookie is HttpOnly and SameSite=Strict: a page on another
site can neither read it nor make the browser send it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from tuneforge.api.auth import KEY_COOKIE
from tuneforge.service.errors import ServiceError
from tuneforge.store.scope import current_actor
from tuneforge.web.rendering import CONSOLE, render

router = APIRouter(prefix=CONSOLE)
THIRTY_DAYS_S = 30 * 24 * 3600


def _next(target: str | None) -> str:
    # only this console's own pages: anything else would make the sign-in an open redirect
    if target and target.startswith(f"{CONSOLE}/") and not target.startswith("//"):
        return target
    return f"{CONSOLE}/tasks"


def _signed_in(request: Request, key: str, target: str | None) -> RedirectResponse:
    response = RedirectResponse(_next(target), status_code=303)
    response.set_cookie(KEY_COOKIE, key, max_age=THIRTY_DAYS_S, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")
    return response


@router.get("/login", response_class=HTMLResponse, response_model=None)
def login_page(request: Request, key: str | None = None, next: str | None = None) -> HTMLResponse | RedirectResponse:
    if key is not None:
        if request.app.state.platform.users.authenticate(key.strip()):
            return _signed_in(request, key.strip(), next)
        return render(request, "account/login.html", status_code=401, next=_next(next), failed=True)
    return render(request, "account/login.html", next=_next(next), failed=False)


@router.post("/login", response_class=HTMLResponse, response_model=None)
def login(request: Request, key: str = Form(""), next: str = Form("")) -> HTMLResponse | RedirectResponse:
    if key.strip() and request.app.state.platform.users.authenticate(key.strip()):
        return _signed_in(request, key.strip(), next)
    return render(request, "account/login.html", status_code=401, next=_next(next), failed=True)


@router.post("/logout")
def logout() -> RedirectResponse:
    response = RedirectResponse(f"{CONSOLE}/login", status_code=303)
    response.delete_cookie(KEY_COOKIE, path="/")
    return response


def _users_page(request: Request, new_key: dict[str, Any] | None = None, error: str | None = None,
                status_code: int = 200) -> HTMLResponse:
    users = request.app.state.platform.users
    actor = current_actor()
    return render(request, "account/users.html", status_code=status_code, me=users.me(),
                  keys=users.list_keys()["items"], users=users.list()["items"],
                  is_admin=bool(actor and actor.is_admin), new_key=new_key, error=error)


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request) -> HTMLResponse:
    return _users_page(request)


@router.post("/users/keys", response_class=HTMLResponse)
def create_key(request: Request, name: str = Form(""), user_id: int | None = Form(None)) -> HTMLResponse:
    try:
        new_key = request.app.state.platform.users.create_key(name, user_id)
    except ServiceError as exc:
        return _users_page(request, error=exc.message, status_code=exc.status)
    return _users_page(request, new_key=new_key)


@router.post("/users/keys/revoke", response_class=HTMLResponse)
def revoke_key(request: Request, id: int = Form(...)) -> HTMLResponse:
    try:
        request.app.state.platform.users.revoke_key(id)
    except ServiceError as exc:
        return _users_page(request, error=exc.message, status_code=exc.status)
    return _users_page(request)


@router.post("/users/new", response_class=HTMLResponse)
def create_user(request: Request, name: str = Form(...), role: str = Form("member")) -> HTMLResponse:
    try:
        request.app.state.platform.users.create_user(name.strip(), role)
    except ServiceError as exc:
        return _users_page(request, error=exc.message, status_code=exc.status)
    return _users_page(request)


