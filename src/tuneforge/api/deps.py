"""What routes depend on, as `Annotated` dependencies (the FastAPI full-stack template's style): the running platform
and each of its use-case services, typed, so a route names what it needs instead of digging in `app.state`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tuneforge.service.datasets.datasets import DatasetService
from tuneforge.service.graders.graders import GraderService
from tuneforge.service.models.deployments import DeploymentService
from tuneforge.service.models.evaluations import EvaluationService
from tuneforge.service.models.exports import ExportService
from tuneforge.service.models.models import ModelService
from tuneforge.service.openai.files import FileService
from tuneforge.service.openai.jobs import FineTuningService
from tuneforge.service.platform import Platform
from tuneforge.service.tasks.experiments import ExperimentService
from tuneforge.service.tasks.tasks import TaskService


def get_platform(request: Request) -> Platform:
    """The platform the app's lifespan built (or the one a test handed to create_app)."""
    platform: Platform = request.app.state.platform
    return platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


def get_tasks(platform: PlatformDep) -> TaskService:
    return platform.tasks


def get_experiments(platform: PlatformDep) -> ExperimentService:
    return platform.experiments


def get_datasets(platform: PlatformDep) -> DatasetService:
    return platform.datasets


def get_models(platform: PlatformDep) -> ModelService:
    return platform.models


def get_exports(platform: PlatformDep) -> ExportService:
    return platform.exports


def get_evaluations(platform: PlatformDep) -> EvaluationService:
    return platform.evaluations


def get_deployments(platform: PlatformDep) -> DeploymentService:
    return platform.deployments


def get_graders(platform: PlatformDep) -> GraderService:
    return platform.graders


def get_files(platform: PlatformDep) -> FileService:
    return platform.files


def get_fine_tuning(platform: PlatformDep) -> FineTuningService:
    return platform.fine_tuning


TasksDep = Annotated[TaskService, Depends(get_tasks)]
ExperimentsDep = Annotated[ExperimentService, Depends(get_experiments)]
DatasetsDep = Annotated[DatasetService, Depends(get_datasets)]
ModelsDep = Annotated[ModelService, Depends(get_models)]
ExportsDep = Annotated[ExportService, Depends(get_exports)]
EvaluationsDep = Annotated[EvaluationService, Depends(get_evaluations)]
DeploymentsDep = Annotated[DeploymentService, Depends(get_deployments)]
GradersDep = Annotated[GraderService, Depends(get_graders)]
FilesDep = Annotated[FileService, Depends(get_files)]
FineTuningDep = Annotated[FineTuningService, Depends(get_fine_tuning)]
