"""Deployments: a named serving process per registered model (`python -m tuneforge.serving`), started,
health-checked, restarted when it crashes (up to `MAX_RESTARTS`), stopped and deleted by the service. Several run
at once, each on its own port; the API's /v1 gateway routes to them by name. On a GPU host a deployment holds its
GPUs from its start until it stops or fails (service.runtime.devices), and its process sees only those.

An on-demand deployment (service.models.on_demand) is the same row and process, started by the gateway for a registered
model nobody deployed: `options` carries {"on_demand": true} (no new column) and its name is `on-demand-<model id>`,
a prefix explicit deployments may not take. It serves under the model's own name, and is listed with the others
(onDemand: true) so that what runs, and what keeps a model from being deleted, is in sight."""

from __future__ import annotations

import builtins  # in the service's signatures `list` names its list method: the type is builtins.list
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneforge.planning.devices import Device
from tuneforge.schemas import ConfigProblem
from tuneforge.schemas.tasks import name_problem
from tuneforge.service.errors import Conflict, InvalidInput, get_or_not_found
from tuneforge.service.models.models import ready_model
from tuneforge.service.models.serving_engines import (
    ServedModel,
    engine_problem,
    gpus_needed,
    options_problem,
    serving_command,
)
from tuneforge.service.runtime.devices import DEPLOYMENT_HOLDING, claim_gpus, claiming, gpu_host, job_environment
from tuneforge.service.runtime.jobs import watch_in_background
from tuneforge.service.runtime.processes import create_time, file_tail, is_same_process
from tuneforge.settings import Settings
from tuneforge.store import Database, Deployment, RegisteredModel
from tuneforge.store.scope import current_actor

log = logging.getLogger(__name__)
MAX_RESTARTS = 3
LIVE = DEPLOYMENT_HOLDING  # a live deployment holds its GPUs, across crash restarts too
ON_DEMAND = "on_demand"  # the key in Deployment.options that marks an on-demand deployment; never an engine flag
ON_DEMAND_PREFIX = "on-demand-"


class DeploymentService:
    def __init__(self, db: Database, settings: Settings, devices: builtins.list[Device] | None = None) -> None:
        self.db = db
        self.settings = settings
        self.devices = devices or []  # the host's: on a GPU host a live deployment holds its GPUs
        self.root = settings.home / "deployments"
        self.python = sys.executable
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # stop / start / delete and the watcher's restarts take turns: a watcher pass that read a deployment as
        # running while a stop was killing its process would otherwise "restart" it behind the stop's back.
        self._changing = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def create(self, name: str, model_id: int, options: dict[str, Any] | None = None,
               engine: str = "transformers") -> dict[str, Any]:
        if why := name_problem(name) or (name.startswith(ON_DEMAND_PREFIX) and
                                         f"is reserved: names starting with {ON_DEMAND_PREFIX!r} belong to models "
                                         "served on demand"):
            raise InvalidInput.of([ConfigProblem("name", why)])
        with claiming(), self.db.session() as session:
            model = ready_model(session, model_id)
            if problem := (engine_problem(engine, _served(name, model)) or options_problem(engine, options or {})
                           or self._gpus_problem(engine, options or {})):
                raise InvalidInput.of([problem])
            return self._create(session, name, model, options or {}, engine)

    def create_on_demand(self, model_id: int) -> dict[str, Any]:
        """The on-demand deployment of a model, started: a new one, or its stopped or failed row started again (a
        live one is left as it is)."""
        with self._changing, claiming(), self.db.session() as session:
            model = ready_model(session, model_id, "model")
            name = on_demand_name(model_id)
            deployment = session.scalar(select(Deployment).where(Deployment.name == name))
            if deployment is None:  # whoever may see the model may see (and use) its on-demand deployment
                return self._create(session, name, model, {ON_DEMAND: True}, "transformers", model.owner_id)
            if not is_on_demand(deployment):  # made before the prefix was reserved
                raise Conflict(f"an explicit deployment is named {name!r}, the name of model {model.name!r}'s "
                               "on-demand deployment; rename or delete it")
            if deployment.status not in LIVE:
                self._claim(session, deployment)
                deployment.status, deployment.restarts, deployment.error_message = "starting", 0, None
                self._launch(deployment, model)
            return deployment_view(deployment, model)

    def _create(self, session: Session, name: str, model: RegisteredModel, options: dict[str, Any],
                engine: str, owner_id: int | None = None) -> dict[str, Any]:
        if session.scalar(select(Deployment.id).where(Deployment.name == name)) is not None:
            raise Conflict(f"name: a deployment named {name!r} exists", [ConfigProblem("name", "exists")])
        deployment = Deployment(name=name, owner_id=owner_id, model_id=model.id, engine=engine, status="starting",
                                options=options,
                                log_path=str(self.root / name / "serving.log"), created_at=time.time())
        self._claim(session, deployment)  # before the row exists: a refused claim leaves nothing behind
        session.add(deployment)
        session.flush()
        self._launch(deployment, model)
        return deployment_view(deployment, model)

    def _claim(self, session: Session, deployment: Deployment) -> None:
        """The GPUs the deployment will hold (call inside `claiming()`): Conflict naming their holders when too few
        are free, never a GPU a task or an evaluation holds."""
        count = gpus_needed(deployment.engine, engine_options(deployment))
        deployment.devices = claim_gpus(session, self.devices, count, f"deployment {deployment.name!r}",
                                        current_actor())

    def _gpus_problem(self, engine: str, options: dict[str, Any]) -> ConfigProblem | None:
        """More GPUs asked than the host has: no wait makes it fit (a busy host is a 409 at claim time instead)."""
        count = gpus_needed(engine, options)
        if gpu_host(self.devices) and count > len(self.devices):
            return ConfigProblem("options.tensor_parallel_size", f"{count} GPUs asked; this host has "
                                                                 f"{len(self.devices)}")
        return None

    def _launch(self, deployment: Deployment, model: RegisteredModel) -> None:
        port = _free_port()
        command = serving_command(deployment.engine, _served(served_name(deployment, model), model), self.python,
                                  port, engine_options(deployment))
        Path(deployment.log_path).parent.mkdir(parents=True, exist_ok=True)
        env = job_environment({**os.environ, "TOKENIZERS_PARALLELISM": "false"}, self.devices, deployment.devices)
        with open(deployment.log_path, "ab") as output:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                       start_new_session=True, env=env)
        self._children[process.pid] = process
        deployment.port, deployment.pid, deployment.command = port, process.pid, command
        deployment.pid_started_at = create_time(process.pid)
        deployment.started_at = time.time()

    def stop(self, deployment_id: int) -> dict[str, Any]:
        with self._changing, self.db.session() as session:
            deployment, model = _deployment(session, deployment_id)
            self._terminate(deployment)
            deployment.status, deployment.pid = "stopped", None
            return deployment_view(deployment, model)

    def start(self, deployment_id: int) -> dict[str, Any]:
        with self._changing, claiming(), self.db.session() as session:
            deployment, model = _deployment(session, deployment_id)
            if deployment.status in LIVE:
                raise Conflict(f"deployment {deployment.name!r} is already {deployment.status}")
            self._claim(session, deployment)
            deployment.status, deployment.restarts, deployment.error_message = "starting", 0, None
            self._launch(deployment, model)
            return deployment_view(deployment, model)

    def delete(self, deployment_id: int) -> dict[str, Any]:
        with self._changing, self.db.session() as session:
            deployment, _ = _deployment(session, deployment_id)
            name = deployment.name
            self._terminate(deployment)
            session.delete(deployment)
        return {"id": deployment_id, "name": name, "deleted": True}

    def mark_running(self, deployment_id: int) -> None:
        """A starting deployment whose /health answered (the caller checked): running now, not at the watcher's next
        pass."""
        with self._changing, self.db.session() as session:
            deployment = session.get(Deployment, deployment_id)
            if deployment is not None and deployment.status in ("starting", "restarting"):
                deployment.status = "running"

    def _terminate(self, deployment: Deployment) -> None:
        if deployment.pid and is_same_process(deployment.pid, deployment.pid_started_at):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(deployment.pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and is_same_process(deployment.pid, deployment.pid_started_at):
                self._reap(deployment.pid)
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(deployment.pid, signal.SIGKILL)
            self._reap(deployment.pid)

    def _reap(self, pid: int) -> int | None:
        child = self._children.get(pid)
        if child is None:
            return None
        code = child.poll()
        if code is not None:
            del self._children[pid]
        return code

    # -- watching ----------------------------------------------------------------------------------------------
    def start_watching(self, interval: float = 1.0) -> None:
        self._thread = watch_in_background("tuneforge-deployments", interval, self.watch, self._stop)

    def close(self) -> None:
        """Stops the watcher and waits for a pass in progress: nothing of this server acts after it is closed."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def watch(self) -> None:
        """starting → running once /health answers; a dead process is restarted (the status says so) up to
        MAX_RESTARTS times, then failed with the exit code and the log tail."""
        with self._changing, self.db.session() as session:
            rows = session.execute(select(Deployment, RegisteredModel).join(RegisteredModel)
                                   .where(Deployment.status.in_(LIVE))).all()
            for deployment, model in rows:
                if deployment.pid and is_same_process(deployment.pid, deployment.pid_started_at):
                    if deployment.status != "running" and _healthy(deployment.port):
                        deployment.status = "running"
                    continue
                code = self._reap(deployment.pid) if deployment.pid else None
                tail = file_tail(Path(deployment.log_path))
                if deployment.restarts >= MAX_RESTARTS:
                    deployment.status, deployment.pid = "failed", None
                    deployment.error_message = (f"the serving process exited (code {code}) and was restarted "
                                                f"{deployment.restarts} times; giving up. Last log lines:\n{tail}")
                    continue
                deployment.restarts += 1
                deployment.status = "restarting"
                deployment.error_message = (f"crashed (exit code {code}); restarted "
                                            f"({deployment.restarts}/{MAX_RESTARTS}). Last log lines:\n{tail}")
                self._launch(deployment, model)

    # -- read --------------------------------------------------------------------------------------------------
    def list(self) -> dict[str, Any]:
        with self.db.session() as session:
            rows = session.execute(select(Deployment, RegisteredModel).join(RegisteredModel)
                                   .order_by(Deployment.created_at.desc())).all()
            items = [deployment_view(d, m) for d, m in rows]
        return {"total": len(items), "items": items}

    def get(self, deployment_id: int) -> dict[str, Any]:
        with self.db.session() as session:
            deployment, model = _deployment(session, deployment_id)
            return deployment_view(deployment, model) | {"healthy": _healthy(deployment.port)
                                                         if deployment.status in LIVE else False}

    def logs(self, deployment_id: int, tail: int = 100) -> dict[str, Any]:
        with self.db.session() as session:
            deployment, _ = _deployment(session, deployment_id)
            path = Path(deployment.log_path)
        return {"id": deployment_id, "lines": file_tail(path, tail).splitlines()}

    def route(self, name: str) -> tuple[str, int | None, str] | None:
        """(deployment name, port, status) of the explicit deployment that serves `name`, for the gateway: the one of
        that name (whatever its status), else a live one of the registered model of that name (a running one
        first). None: no explicit deployment serves it (the gateway then serves a registered model on demand)."""
        with self.db.session() as session:
            deployment = session.scalar(select(Deployment).where(Deployment.name == name))
            if deployment is None or is_on_demand(deployment):
                serving = [d for d in session.scalars(select(Deployment).join(RegisteredModel)
                                                      .where(RegisteredModel.name == name,
                                                             Deployment.status.in_(LIVE)))
                           if not is_on_demand(d)]
                deployment = next((d for d in serving if d.status == "running"), serving[0] if serving else None)
            return (deployment.name, deployment.port, deployment.status) if deployment is not None else None

    def is_registered(self, name: str) -> bool:
        with self.db.session() as session:
            return session.scalar(select(RegisteredModel.id).where(RegisteredModel.name == name)) is not None

    def running_names(self) -> builtins.list[tuple[str, float]]:
        """(name, created) of the running explicit deployments: the names /v1 answers to besides the models'."""
        with self.db.session() as session:
            return [(d.name, d.created_at) for d in
                    session.scalars(select(Deployment).where(Deployment.status == "running")) if not is_on_demand(d)]


def on_demand_name(model_id: int) -> str:
    return f"{ON_DEMAND_PREFIX}{model_id}"


def is_on_demand(deployment: Deployment) -> bool:
    return bool((deployment.options or {}).get(ON_DEMAND))


def engine_options(deployment: Deployment) -> dict[str, Any]:
    """The options the engine gets as flags: the user's, without the service's own marker."""
    return {k: v for k, v in (deployment.options or {}).items() if k != ON_DEMAND}


def served_name(deployment: Deployment, model: RegisteredModel) -> str:
    """The name the serving process answers to: an on-demand one serves the model under the model's own name (what
    the client asked for comes back in the answer's `model`); an explicit one under the deployment's."""
    return model.name if is_on_demand(deployment) else deployment.name


def deployment_view(deployment: Deployment, model: RegisteredModel) -> dict[str, Any]:
    return {"id": deployment.id, "name": deployment.name, "modelId": model.id, "modelName": model.name,
            "engine": deployment.engine, "status": deployment.status, "port": deployment.port,
            "pid": deployment.pid, "restarts": deployment.restarts, "errorMessage": deployment.error_message,
            "command": deployment.command, "logPath": deployment.log_path, "options": engine_options(deployment),
            "onDemand": is_on_demand(deployment), "devices": list(deployment.devices or []),
            "createdAt": deployment.created_at, "startedAt": deployment.started_at}


def _deployment(session: Session, deployment_id: int) -> tuple[Deployment, RegisteredModel]:
    deployment = get_or_not_found(session, Deployment, deployment_id, "deployment")
    # the model cannot be missing: deleting a model is refused while a deployment serves it
    return deployment, session.get_one(RegisteredModel, deployment.model_id)


def _served(name: str, model: RegisteredModel) -> ServedModel:
    return ServedModel(name, model.model_path or model.source, model.adapter_path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _healthy(port: int | None) -> bool:
    if not port:
        return False
    try:
        # Loopback: never through HTTP(S)_PROXY (a proxy would answer for a dead process, or see the traffic).
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1.0, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False

