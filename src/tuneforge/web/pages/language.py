"""The header's language switch: remembers the choice in the `lang` cookie and goes back to the page."""

from __future__ import annotations

from fastapi import APIRouter, Query
from fastapi.responses import RedirectResponse

from tuneforge.web.i18n import LANG_COOKIE, LANGUAGES
from tuneforge.web.rendering import CONSOLE

router = APIRouter(prefix=CONSOLE)
ONE_YEAR_S = 365 * 24 * 3600


@router.get("/language")
def switch_language(to: str = Query(..., alias="to"), next: str = f"{CONSOLE}/tasks") -> RedirectResponse:
    # Only paths of this console: a full URL or "//host" here would make the switch an open redirect.
    target = next if next.startswith(f"{CONSOLE}/") and not next.startswith("//") else f"{CONSOLE}/tasks"
    response = RedirectResponse(target, status_code=303)
    if to in LANGUAGES:
        response.set_cookie(LANG_COOKIE, to, max_age=ONE_YEAR_S, samesite="lax")
    return response
