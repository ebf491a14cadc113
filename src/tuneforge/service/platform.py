"""The running platform: database, devices, executor, scheduler and the use-cases built on them."""

from __future__ import annotations

import logging

from tuneforge.planning.devices import Device, detect_devices
from tuneforge.service.datasets.datasets import DatasetService
from tuneforge.service.graders.graders import GraderService
from tuneforge.service.graders.judge import DeploymentJudge
from tuneforge.service.models.deployments import DeploymentService
from tuneforge.service.models.evaluations import EvaluationService
from tuneforge.service.models.exports import ExportService
from tuneforge.service.models.models import ModelService
from tuneforge.service.models.on_demand import OnDemandModels
from tuneforge.service.openai.files import FileService
from tuneforge.service.openai.jobs import FineTuningService
from tuneforge.service.runtime.executor import LocalExecutor
from tuneforge.service.runtime.scheduler import Scheduler
from tuneforge.service.tasks.experiments import ExperimentService
from tuneforge.service.tasks.tasks import TaskService
from tuneforge.service.users.users import UserService
from tuneforge.settings import Settings
from tuneforge.store import Database

log = logging.getLogger(__name__)


class Platform:
    def __init__(self, settings: Settings, devices: list[Device] | None = None,
                 executor: LocalExecutor | None = None) -> None:
        self.settings = settings
        self.db = Database(settings.database)
        self.db.upgrade()
        self.users = UserService(self.db, settings)
        self.users.ensure_local_admin()
        self.devices = devices if devices is not None else detect_devices(settings.cpu_slots)
        self.executor = executor or LocalExecutor()
        self.scheduler = Scheduler(self.db, settings, self.executor, self.devices)
        # Each use-case gets the collaborators it works with, nothing more: the wiring is all here.
        self.tasks = TaskService(self.db, settings, self.devices, self.executor, self.scheduler)
        self.experiments = ExperimentService(self.db)
        self.datasets = DatasetService(self.db, settings)
        self.files = FileService(self.db, settings, self.datasets)
        self.deployments = DeploymentService(self.db, settings)
        self.on_demand = OnDemandModels(self.db, settings, self.deployments)
        self.graders = GraderService(self.db, settings, judge=DeploymentJudge(self.deployments))
        self.evaluations = EvaluationService(self.db, settings, graders=self.graders)
        self.models = ModelService(self.db, settings, self.evaluations)
        self.exports = ExportService(self.db, settings, self.models)
        self.fine_tuning = FineTuningService(self.db, self.tasks, self.models, self.graders, self.files)

    def start(self) -> None:
        """Start the queue; workers that outlived a previous server are watched again from the first tick."""
        self.settings.runs_path.mkdir(parents=True, exist_ok=True)
        self.scheduler.start()
        self.datasets.fail_interrupted_validations()
        self.models.ensure_bundled()
        self.models.fail_interrupted_imports()
        self.deployments.start_watching()
        self.on_demand.start_watching()

    def stop(self) -> None:
        """Stop the background threads (queue, dataset jobs, deployment watcher); workers and deployments run on."""
        self.scheduler.shutdown()
        self.datasets.close()
        self.deployments.close()
        self.on_demand.close()

    def close(self) -> None:
        self.stop()
        self.db.dispose()
