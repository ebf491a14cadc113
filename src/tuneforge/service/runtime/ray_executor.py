"""Tasks on a Ray cluster: the service starts the Ray driver (`python -m tuneforge.engine.ray_run RUN_DIR`) as a
local process and watches it like a local worker; the driver runs the workers on the cluster through Ray Train and
ends when they do. Stop, status and loss of a worker therefore reach the service through the same process and run
directory as a local run (see engine.ray_run)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tuneforge.service.runtime.executor import Launched, LocalExecutor, Placement

RAY_DRIVER_MODULE = "tuneforge.engine.ray_run"


class RayExecutor(LocalExecutor):
    name = "ray"

    def __init__(self, address: str | None, python: str = sys.executable) -> None:
        super().__init__(python)
        self.address = address  # None: the driver starts a Ray of its own on this host

    def launch(self, run_dir: Path, placement: Placement) -> Launched:
        env = dict(os.environ)
        env.pop("CUDA_VISIBLE_DEVICES", None)  # the driver holds no device: Ray gives each worker its own
        env["TOKENIZERS_PARALLELISM"] = "false"
        if self.address:
            env["TUNEFORGE_RAY_ADDRESS"] = self.address
        env.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no reporting home from a self-hosted platform
        return self.start([self.python, "-m", RAY_DRIVER_MODULE, str(run_dir)], env, run_dir)
