"""The FastAPI app. Never imports torch or transformers (import-linter checks), so it starts in well under a second."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import get_args

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from tuneforge import __version__
from tuneforge.api import (
    datasets,
    deployments,
    evaluations,
    experiments,
    finetuning,
    graders,
    models,
    openai_files,
    openai_jobs,
    parameters,
    system,
    users,
)
from tuneforge.api.auth import install_guard
from tuneforge.api.errors import ERROR_RESPONSES, install_error_handlers
from tuneforge.api.limits import RequestLimits
from tuneforge.api.views.openai import OPENAI_ERROR_RESPONSES
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
    native = [finetuning.router, parameters.router, experiments.router, datasets.router, models.router,
              deployments.router, evaluations.router, graders.router, system.router, users.router]
    openai = [deployments.gateway, openai_files.router, openai_jobs.router]
    for router in native:
        app.include_router(router, responses=ERROR_RESPONSES)
    for router in openai:  # OpenAI's clients read OpenAI's error shape
        app.include_router(router, responses=OPENAI_ERROR_RESPONSES)
    routers = native + openai
    limits_from = settings or (platform.settings if platform else get_settings())
    app.add_middleware(RequestLimits, settings=limits_from, upload_paths=UPLOAD_PATHS,
                       int_params=integer_query_params(routers))
    install_guard(app, limits_from)
    return app


# Multipart routes that carry dataset files: they get the upload limit instead of the JSON body limit.
UPLOAD_PATHS = frozenset({"/datasets/createDataset", "/datasets/createDatasetVersion", "/v1/files"})


def integer_query_params(routers: list[APIRouter]) -> frozenset[str]:
    """The query parameters some route (or its dependencies) reads as an integer: checked for range before any
    route runs."""
    names = set()
    for route in (r for router in routers for r in router.routes):
        if isinstance(route, APIRoute):
            names |= _integer_params(route.dependant)
    return frozenset(names)


def _integer_params(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params
             if param.field_info.annotation is int or int in get_args(param.field_info.annotation)}
    for sub in dependant.dependencies:
        names |= _integer_params(sub)
    return names
