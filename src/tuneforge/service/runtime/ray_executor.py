"""Tasks on a Ray cluster: the service starts the Ray driver (`python -m tuneforge.engine.ray_run RUN_DIR`) as a
local process and watches it like a local worker; the driver runs the workers on the cluster through Ray Train and
ends when they do. Stop, status and loss of a worker therefore reach the service through the same process and run
directory as a local run (see engine.ray_run)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

from tuneforge.rundir.launch import worker_environment
from tuneforge.service.runtime.executor import Launched, LocalExecutor, Placement, WorkerRef, request_stop_file
from tuneforge.service.runtime.processes import is_same_process

RAY_DRIVER_MODULE = "tuneforge.engine.ray_run"


class RayExecutor(LocalExecutor):
    name = "ray"

    def __init__(self, address: str | None, python: str = sys.executable) -> None:
        super().__init__(python)
        self.address = address  # None: the driver starts a Ray of its own on this host

    def launch(self, run_dir: Path, placement: Placement) -> Launched:
        env = dict(os.environ)
        env["TOKENIZERS_PARALLELISM"] = "false"
        env.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no reporting home from a self-hosted platform
        if self.address:
            env["TUNEFORGE_RAY_ADDRESS"] = self.address
            env.pop("CUDA_VISIBLE_DEVICES", None)  # the driver holds no device: Ray gives each worker its own
        else:  # a Ray of its own on this host, on the devices the queue claimed for the task (and no others)
            env = worker_environment(env, list(placement.devices), placement.kind, None)
        return self.start([self.python, "-m", RAY_DRIVER_MODULE, str(run_dir)], env, run_dir)

    def request_stop(self, worker: WorkerRef) -> None:
        """The STOP file, and SIGTERM to the driver alone: a Ray it started on this host shares its process group,
        and must outlive the workers' last step (a signal to the group would end the run as a lost worker)."""
        request_stop_file(worker.run_dir)
        if worker.pid is not None and is_same_process(worker.pid, worker.started_at):
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGTERM)
