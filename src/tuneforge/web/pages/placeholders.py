"""Sections in the header that no page module serves yet show a short "not built yet" page instead of a 404 (or a
500). The router is included after every page module, so a real page always wins."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from tuneforge.web.rendering import CONSOLE, NAV, render

router = APIRouter(prefix=CONSOLE)
SECTIONS = {section for section, _ in NAV}


@router.get("", include_in_schema=False)
@router.get("/", include_in_schema=False)
def console_home() -> RedirectResponse:
    return RedirectResponse(f"{CONSOLE}/tasks", status_code=307)


@router.get("/{section}", response_class=HTMLResponse)
def placeholder(request: Request, section: str) -> HTMLResponse:
    if section not in SECTIONS:
        return render(request, "error.html", status_code=404, message_key="error.page_not_found")
    return render(request, "placeholder.html", section=section)
