"""/console redirects to the task list, and a console address no page serves is a console-styled 404 (not the
API's JSON). The router is included after every page module, so a real page always wins."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from tuneforge.web.rendering import CONSOLE, render

router = APIRouter(prefix=CONSOLE)


@router.get("", include_in_schema=False)
@router.get("/", include_in_schema=False)
def console_home() -> RedirectResponse:
    return RedirectResponse(f"{CONSOLE}/tasks", status_code=307)


@router.get("/{section}", response_class=HTMLResponse)
def not_found(request: Request, section: str) -> HTMLResponse:
    return render(request, "error.html", status_code=404, message_key="error.page_not_found")
