"""The console app: the API app (tuneforge.api.app) plus the console's pages under /console and its static files.

Pages are the modules of tuneforge.web.pages, each with a `router`; they are found at start, so adding a page
is adding a module (web/README.md). The fallback router goes last: a console address no page serves is a 404
page.
"""

from __future__ import annotations

import importlib
import pkgutil
from importlib import resources

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from tuneforge.api.app import create_app
from tuneforge.service.platform import Platform
from tuneforge.settings import Settings
from tuneforge.web import pages
from tuneforge.web.pages import fallback
from tuneforge.web.rendering import CONSOLE, STATIC


def create_console_app(settings: Settings | None = None, platform: Platform | None = None,
                       run_scheduler: bool = True) -> FastAPI:
    app = create_app(settings, platform, run_scheduler=run_scheduler)
    static_dir = resources.files("tuneforge.web").joinpath("static")
    app.mount(STATIC, StaticFiles(directory=str(static_dir)), name="console-static")
    for module_name in page_modules():
        app.include_router(importlib.import_module(f"{pages.__name__}.{module_name}").router,
                           include_in_schema=False)
    app.include_router(fallback.router, include_in_schema=False)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse(f"{CONSOLE}/tasks", status_code=307)

    return app


def page_modules() -> list[str]:
    """Every module of tuneforge.web.pages except the fallback, in name order."""
    names = [info.name for info in pkgutil.iter_modules(pages.__path__) if not info.ispkg]
    return sorted(name for name in names if name != fallback.__name__.rsplit(".", 1)[-1])
