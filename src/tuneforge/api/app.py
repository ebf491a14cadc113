"""The FastAPI app. Never imports torch or transformers (import-linter checks), so it starts in well under a second."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tuneforge import __version__
from tuneforge.api import datasets, deployments, evaluations, experiments, finetuning, models, parameters, system
from tuneforge.api.errors import install_error_handlers
from tuneforge.service.platform import Platform
from tuneforge.settings import Settings, get_settings


def create_app(settings: Settings | None = None, platform: Platform | None = None,
               run_scheduler: bool = True) -> FastAPI:
    """`platform` lets tests hand in their own; otherwise one is built from the settings at start-up."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = platform is None
        app.state.platform = platform or Platform(settings or get_settings())
        if run_scheduler:
            app.state.platform.start()
        try:
            yield
        finally:
            if own:
                app.state.platform.close()
            elif run_scheduler:
                app.state.platform.stop()

    app = FastAPI(title="tuneforge", version=__version__, lifespan=lifespan,
                  description="Self-hosted fine-tuning of large language models: tasks, experiments, devices.")
    install_error_handlers(app)
    app.include_router(finetuning.router)
    app.include_router(parameters.router)
    app.include_router(experiments.router)
    app.include_router(datasets.router)
    app.include_router(models.router)
    app.include_router(deployments.router)
    app.include_router(evaluations.router)
    app.include_router(deployments.gateway)
    app.include_router(system.router)
    return app
