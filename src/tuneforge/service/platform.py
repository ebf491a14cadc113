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
from tuneforge.service.runtime.executor import Executor, ExecutorRouter, LocalExecutor
from tuneforge.service.runtime.k8s_manifest import KubernetesOptions
from tuneforge.service.runtime.kubernetes import KubernetesExecutor
from tuneforge.service.runtime.ray_executor import RayExecutor
from tuneforge.service.runtime.scheduler import Scheduler
from tuneforge.service.tasks.experiments import ExperimentService
from tuneforge.service.tasks.tasks import TaskService
from tuneforge.service.users.users import UserService
from tuneforge.settings import Settings
from tuneforge.store import Database

log = logging.getLogger(__name__)


def executors(settings: Settings, local: LocalExecutor) -> dict[str, Executor]:
    """Every executor this server can run tasks on: its own processes, a Ray cluster (TUNEFORGE_RAY_ADDRESS, or a
    Ray the driver starts on this host; a task asks for it with ray_num_workers) and, when configured, Kubernetes
    (gpuConfig executor: kubernetes)."""
    found: dict[str, Executor] = {"local": local, "ray": RayExecutor(settings.ray_address, python=local.python)}
    if settings.kubernetes_image and settings.kubernetes_pvc:
        found["kubernetes"] = KubernetesExecutor(KubernetesOptions(
            image=settings.kubernetes_image, pvc=settings.kubernetes_pvc, home_mount=str(settings.home.resolve()),
            namespace=settings.kubernetes_namespace, runtime=settings.kubernetes_runtime, cpu=settings.kubernetes_cpu,
            memory=settings.kubernetes_memory, unschedulable_timeout_s=settings.kubernetes_unschedulable_timeout_s))
    return found


class Platform:
    def __init__(self, settings: Settings, devices: list[Device] | None = None,
                 executor: LocalExecutor | None = None) -> None:
        self.settings = settings
        self.db = Database(settings.database)
        self.db.upgrade()
        self.users = UserService(self.db, settings)
        self.users.ensure_local_admin()
        self.devices = devices if devices is not None else detect_devices(settings.cpu_slots)
        self.executor = ExecutorRouter(executors(settings, executor or LocalExecutor()))
        self.scheduler = Scheduler(self.db, settings, self.executor, self.devices)
        # Each use-case gets the collaborators it works with, nothing more: the wiring is all here.
        self.tasks = TaskService(self.db, settings, self.devices, self.executor, self.scheduler)
        self.experiments = ExperimentService(self.db)
        self.datasets = DatasetService(self.db, settings)
        self.files = FileService(self.db, settings, self.datasets)
        self.deployments = DeploymentService(self.db, settings, self.devices)
        self.on_demand = OnDemandModels(self.db, settings, self.deployments)
        self.graders = GraderService(self.db, settings, judge=DeploymentJudge(self.deployments))
        self.evaluations = EvaluationService(self.db, settings, graders=self.graders, devices=self.devices)
        self.models = ModelService(self.db, settings, self.evaluations)
        self.exports = ExportService(self.db, settings, self.models)
        self.fine_tuning = FineTuningService(self.db, self.tasks, self.models, self.graders, self.files)

    def start(self) -> None:
        """Start the queue and the watchers. What a previous server left running is followed again, each kind the
        same way: a process still alive is re-attached (workers from the first tick, evaluations before anything
        can claim a device, deployments by their watcher, exports when read); one that died without a result is
        failed with its last output. Jobs that ran in the server itself (validations, imports) cannot be
        re-attached: they are failed as interrupted by the restart."""
        self.settings.runs_path.mkdir(parents=True, exist_ok=True)
        self.evaluations.watch()  # a GPU held by an evaluation that ended while no server ran is free again
        self.scheduler.start()
        self.datasets.fail_interrupted_validations()
        self.models.ensure_bundled()
        self.models.fail_interrupted_imports()
        self.deployments.start_watching()
        self.on_demand.start_watching()
        self.evaluations.start_watching(self.settings.poll_interval_s)

    def stop(self) -> None:
        """Stop the background threads (queue, dataset jobs, watchers); workers, evaluations, exports and
        deployments run on."""
        self.scheduler.shutdown()
        self.datasets.close()
        self.deployments.close()
        self.on_demand.close()
        self.evaluations.close()

    def close(self) -> None:
        self.stop()
        self.db.dispose()
