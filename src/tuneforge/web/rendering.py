"""Jinja2 rendering for console pages: one environment, the translator and formatting filters in every template."""

from __future__ import annotations

import json
import time
from contextvars import ContextVar
from functools import cache
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from tuneforge import __version__
from tuneforge.web.i18n import LANGUAGES, catalog, choose_language, translator

CONSOLE = "/console"
STATIC = f"{CONSOLE}/static"
HTMX_STOP_POLLING = 286  # a fragment answered with this status tells htmx to stop polling it
# The language of the page being rendered, so that t() also works in macros imported without context.
_page_language: ContextVar[str] = ContextVar("page_language", default="en")

# The header's navigation: (section, path); each section is served by its module under web/pages/.
NAV: tuple[tuple[str, str], ...] = (
    ("tasks", f"{CONSOLE}/tasks"),
    ("compare", f"{CONSOLE}/compare"),
    ("datasets", f"{CONSOLE}/datasets"),
    ("models", f"{CONSOLE}/models"),
    ("deployments", f"{CONSOLE}/deployments"),
    ("graders", f"{CONSOLE}/graders"),
    ("chat", f"{CONSOLE}/chat"),
    ("system", f"{CONSOLE}/system"),
    ("users", f"{CONSOLE}/users"),
)


def duration(seconds: float | None) -> str:
    """1 h 02 m, 3 m 05 s, 42 s; '—' when unknown."""
    if seconds is None:
        return "—"
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} m"
    return f"{minutes} m {secs:02d} s" if minutes else f"{secs} s"


def compact(number: float | None) -> str:
    """Token counts as people read them: 950, 12.3k, 4.56M."""
    if number is None:
        return "—"
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(number) >= limit:
            return f"{number / limit:.3g}{suffix}"
    return f"{number:g}" if isinstance(number, float) else str(number)


def timestamp(epoch: float | None) -> str:
    """Server-local date and time, to the minute."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch)) if epoch else "—"


def to_json(value: Any) -> Markup:
    """JSON for a <script type="application/json"> block; '<' is escaped so no value can close the tag."""
    return Markup(json.dumps(value, ensure_ascii=False, default=str).replace("<", "\\u003c"))


def client_catalog(lang: str) -> dict[str, str]:
    """The strings the page scripts need (keys starting with 'js.'), handed to them in the layout."""
    return {key: text for key, text in catalog(lang).items() if key.startswith("js.")}


def _t(key: str, **values: Any) -> str:
    return translator(_page_language.get())(key, **values)


@cache
def environment() -> Environment:
    env = Environment(loader=PackageLoader("tuneforge.web", "templates"), autoescape=select_autoescape(["html"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(duration=duration, compact=compact, timestamp=timestamp, tojson_script=to_json)
    env.globals.update(CONSOLE=CONSOLE, STATIC=STATIC, NAV=NAV, LANGUAGES=LANGUAGES, version=__version__,
                       client_catalog=client_catalog, t=_t)
    return env


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page (or an htmx fragment) in the request's language."""
    lang = choose_language(request)
    _page_language.set(lang)
    page = environment().get_template(template).render(
        request=request, lang=lang, t=translator(lang), path=request.url.path,
        current_url=str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""),
        **context)
    return HTMLResponse(page, status_code=status_code)
