"""Models served on demand: /v1/chat/completions naming a registered model that no deployment serves loads it in the
serving process an explicit deployment runs (DeploymentService.create_on_demand), keeps it while it is used, and
unloads it after `on_demand_idle_s` without a request, or when a model loaded later needs its room in the budget
`on_demand_memory_bytes` (least recently used first, never one with a request in flight). Explicit deployments are
neither counted nor unloaded.

The budget counts an *estimate* of each model's resident size (resident_bytes): its weights' size on disk ×
WEIGHTS_FACTOR plus RUNTIME_BYTES, not the process's measured RSS: room is made before the process exists, RSS
grows for a while after loading (weights are mapped, then read) and with each batch's KV cache, and GPU memory does not
show in it. Every database access of the pool is in this class's methods (and the DeploymentService calls they make),
so that it can act as the platform when requests act as users."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import select

from tuneforge.service.errors import NotFound, ServiceError
from tuneforge.service.models.deployments import LIVE, ON_DEMAND_PREFIX, DeploymentService, is_on_demand, on_demand_name
from tuneforge.service.models.resident_size import RUNTIME_BYTES, WEIGHTS_FACTOR, resident_bytes
from tuneforge.service.runtime.processes import file_tail, is_same_process
from tuneforge.settings import Settings
from tuneforge.store import Database, Deployment, RegisteredModel
from tuneforge.store.scope import as_platform

log = logging.getLogger(__name__)
# Measured on CPU: a serving process of the tiny test model (0.6 MB of weights) holds ~370 MiB resident (Python, torch,
# transformers, uvicorn); one of SmolLM2-135M (540 MB of float32 weights) ~410 MiB once loaded (the weights are
# mapped, not read yet) and ~910 MiB after its first answer.
POLL_S = 0.25
LOG_LINES = 15


class OnDemandUnavailable(Exception):
    """The model cannot be served on demand now; `message` says why and what to do, `code` for clients."""

    def __init__(self, message: str, code: str, status: int = 503) -> None:
        super().__init__(message)
        self.message, self.code, self.status = message, code, status


@dataclass(frozen=True)
class ModelEntry:
    """A name /v1/models lists: a ready registered model, or a running explicit deployment."""

    name: str
    created: float
    loaded: bool  # a serving process answers it now


@dataclass(frozen=True)
class _Model:
    id: int
    name: str
    resident_bytes: int


@dataclass(frozen=True)
class _OnDemand:  # an on-demand deployment, as the budget sees it
    deployment_id: int
    model: _Model
    status: str
    log_path: str


@dataclass
class _Usage:
    in_flight: int = 0
    last_used: float = field(default_factory=time.monotonic)


@dataclass
class Lease:
    """A request in flight on an on-demand model (`model`: the name it serves under): the model stays loaded until
    the lease is released."""

    model: str
    port: int
    _release: Callable[[], None]

    def release(self) -> None:
        self._release, release = _nothing, self._release
        release()


class OnDemandModels:
    def __init__(self, db: Database, settings: Settings, deployments: DeploymentService) -> None:
        self.db = db
        self.settings = settings
        self.deployments = deployments
        # Requests (event loop and its worker threads) and the idle loop read and change the usage together.
        self._state = threading.Lock()
        self._usage: dict[int, _Usage] = {}  # by deployment id
        self._loading: set[int] = set()  # deployment ids a request waits on: not to be unloaded under it
        self._unloading: set[int] = set()  # deployment ids being stopped: not to be leased
        # Making room, launching and unloading take turns, so each counts what the one before started or stopped.
        self._admission = threading.RLock()
        self._starting: dict[int, asyncio.Future[None]] = {}  # model id → its load (event loop only)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- /v1/models ----------------------------------------------------------------------------------------------
    def models(self) -> list[ModelEntry]:
        """Ready registered models (each can be served on demand) and running explicit deployments; a deployment
        named like a model hides the model, as the gateway routes that name to the deployment."""
        with self.db.session() as session:
            deployments = session.scalars(select(Deployment).where(Deployment.status == "running")).all()
            models = session.scalars(select(RegisteredModel).where(RegisteredModel.status == "ready")
                                     .order_by(RegisteredModel.name)).all()
            loaded = {d.model_id for d in deployments}
            explicit = [ModelEntry(d.name, d.created_at, True) for d in deployments if not is_on_demand(d)]
            taken = {entry.name for entry in explicit}
            return [*(ModelEntry(m.name, m.created_at, m.id in loaded) for m in models if m.name not in taken),
                    *sorted(explicit, key=lambda entry: entry.name)]

    def model(self, name: str) -> ModelEntry | None:
        return next((entry for entry in self.models() if entry.name == name), None)

    # -- serving a request -----------------------------------------------------------------------------------------
    async def acquire(self, name: str) -> Lease | None:
        """A lease on the loaded model `name`, loading it first if needed (concurrent first requests share one load);
        None when no model has that name. Raises OnDemandUnavailable when it cannot be loaded."""
        model = await asyncio.to_thread(self._find_model, name)  # as the caller: whose models they may use
        if model is None:
            return None
        # the pool is the platform's: it counts, loads and unloads every user's on-demand models
        with as_platform():
            return await self._acquire_loaded(model, name)

    async def _acquire_loaded(self, model: _Model, name: str) -> Lease:
        deadline = time.monotonic() + self.settings.on_demand_start_timeout_s
        while True:
            lease = await asyncio.to_thread(self._lease, model)
            if lease is not None:
                return lease
            if time.monotonic() > deadline:  # loaded, then unloaded for another before this request got it
                raise OnDemandUnavailable(f"model {name!r} was unloaded again while this request waited; try again",
                                          "model_unloaded")
            # shield: a client that gives up does not cancel the load the other requests wait on
            await asyncio.shield(self._load_once(model, deadline))

    def _find_model(self, name: str) -> _Model | None:
        """The model of that name; or of the on-demand deployment of that name, which getDeploymentList shows
        among the running ones (so every name listed there answers)."""
        with self.db.session() as session:
            model = session.scalar(select(RegisteredModel).where(RegisteredModel.name == name))
            if model is None and name.startswith(ON_DEMAND_PREFIX):
                model = session.scalar(select(RegisteredModel).join(Deployment, Deployment.model_id ==
                                                                    RegisteredModel.id).where(Deployment.name == name))
            if model is None:
                return None
            if model.status != "ready":
                why = f"still importing ({model.progress:.0f}%)" if model.status == "importing" else \
                    f"failed to import: {model.error_message}"
                raise OnDemandUnavailable(f"model {name!r} is {why}", "model_not_ready", 409)
            return _Model(model.id, model.name, resident_bytes(model))

    def _lease(self, model: _Model) -> Lease | None:
        with self.db.session() as session:
            deployment = session.scalar(select(Deployment).where(Deployment.name == on_demand_name(model.id)))
            if deployment is None or deployment.status != "running" or deployment.port is None:
                return None
            deployment_id, port = deployment.id, deployment.port
        with self._state:
            if deployment_id in self._unloading:
                return None
            usage = self._usage.setdefault(deployment_id, _Usage())
            usage.in_flight += 1
            usage.last_used = time.monotonic()
        return Lease(model.name, port, functools.partial(self._release, deployment_id))

    def _release(self, deployment_id: int) -> None:
        with self._state:
            usage = self._usage.setdefault(deployment_id, _Usage())
            usage.in_flight = max(usage.in_flight - 1, 0)
            usage.last_used = time.monotonic()

    # -- loading ---------------------------------------------------------------------------------------------------
    def _load_once(self, model: _Model, deadline: float) -> asyncio.Future[None]:
        """The model's load in progress, or a new one: one serving process however many requests ask at once."""
        load = self._starting.get(model.id)
        if load is None:
            load = asyncio.ensure_future(self._load(model, deadline))
            self._starting[model.id] = load
            load.add_done_callback(functools.partial(self._load_done, model.id))
        return load

    def _load_done(self, model_id: int, load: asyncio.Future[None]) -> None:
        self._starting.pop(model_id, None)
        if not load.cancelled():
            load.exception()  # each waiting request has it; marked retrieved so asyncio does not log it again

    async def _load(self, model: _Model, deadline: float) -> None:
        deployment_id = await self._admit(model, deadline)
        try:
            await self._wait_healthy(model, deployment_id, deadline)
        finally:
            with self._state:
                self._loading.discard(deployment_id)

    async def _admit(self, model: _Model, deadline: float) -> int:
        """Room made and the process launched; waits while every model that would have to go answers a request."""
        while True:
            deployment_id = await asyncio.to_thread(self._try_admit, model)
            if deployment_id is not None:
                return deployment_id
            if time.monotonic() > deadline:
                raise OnDemandUnavailable(
                    f"model {model.name!r} does not fit beside the models loaded on demand, and each of those is "
                    f"answering a request (budget: on_demand_memory_bytes={self.settings.on_demand_memory_bytes}); "
                    "try again shortly", "on_demand_budget_busy")
            await asyncio.sleep(POLL_S)

    def _try_admit(self, model: _Model) -> int | None:
        budget = self.settings.on_demand_memory_bytes
        if model.resident_bytes > budget:
            raise OnDemandUnavailable(_too_large(model, budget), "model_exceeds_on_demand_budget")
        with self._admission:
            loaded = self._on_demand()
            own = next((d for d in loaded if d.model.id == model.id and d.status in LIVE), None)
            if own is None:
                others = [d for d in loaded if d.status in LIVE]
                excess = sum(d.model.resident_bytes for d in others) + model.resident_bytes - budget
                victims = self._victims(others, excess)
                if victims is None:
                    return None
                for victim in victims:
                    if not self._unload(victim, f"made room for {model.name!r} (on_demand_memory_bytes={budget})"):
                        return None  # it took a request meanwhile: look again
                try:
                    deployment_id = int(self.deployments.create_on_demand(model.id)["id"])
                except ServiceError as exc:  # deleted, or its name taken, since it was looked up
                    raise OnDemandUnavailable(f"model {model.name!r}: {exc.message}", exc.code, exc.status) from exc
            else:
                deployment_id = own.deployment_id  # starting already (a server restart left it, or a crash restart)
            with self._state:
                self._loading.add(deployment_id)
                self._usage.setdefault(deployment_id, _Usage()).last_used = time.monotonic()
            return deployment_id

    def _victims(self, others: list[_OnDemand], excess: int) -> list[_OnDemand] | None:
        """The least recently used idle models that free `excess` bytes together; None when the idle ones cannot."""
        if excess <= 0:
            return []
        with self._state:
            idle = sorted((d for d in others if self._is_idle(d.deployment_id)),
                          key=lambda d: self._usage.setdefault(d.deployment_id, _Usage()).last_used)
        chosen: list[_OnDemand] = []
        for deployment in idle:
            if excess <= 0:
                break
            chosen.append(deployment)
            excess -= deployment.model.resident_bytes
        return chosen if excess <= 0 else None

    def _is_idle(self, deployment_id: int) -> bool:
        usage = self._usage.get(deployment_id)
        return (usage is None or usage.in_flight == 0) and deployment_id not in self._loading | self._unloading

    async def _wait_healthy(self, model: _Model, deployment_id: int, deadline: float) -> None:
        """Polls the process's /health (not the watcher's next pass): the first answer comes as soon as it can."""
        first_restarts: int | None = None
        async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:  # loopback: never through a proxy
            while True:
                deployment = await asyncio.to_thread(self._deployment, deployment_id)
                if deployment is None:
                    raise OnDemandUnavailable(f"model {model.name!r}: its on-demand deployment was deleted while "
                                              "it loaded", "model_failed_to_load")
                first_restarts = deployment.restarts if first_restarts is None else first_restarts
                if (deployment.status == "failed" or deployment.restarts > first_restarts
                        or not (deployment.pid and is_same_process(deployment.pid, deployment.pid_started_at))):
                    await self._fail(model, deployment, "its serving process exited while loading the model")
                if await _answers(client, deployment.port):
                    await asyncio.to_thread(self.deployments.mark_running, deployment_id)
                    return
                if time.monotonic() > deadline:
                    await self._fail(model, deployment, "its serving process did not answer within "
                                     f"{self.settings.on_demand_start_timeout_s:g} s (on_demand_start_timeout_s)")
                await asyncio.sleep(POLL_S)

    def _deployment(self, deployment_id: int) -> Deployment | None:
        with self.db.session() as session:
            deployment = session.get(Deployment, deployment_id)
            if deployment is not None:
                session.expunge(deployment)  # read after the session: every column is loaded already
            return deployment

    async def _fail(self, model: _Model, deployment: Deployment, why: str) -> None:
        """Stops what is left of a failed load and raises the 503 every waiting request answers."""
        tail = file_tail(Path(deployment.log_path), LOG_LINES)
        await asyncio.to_thread(self._remove, deployment.id, deployment.log_path, f"failed to load: {why}")
        raise OnDemandUnavailable(f"model {model.name!r} could not be served on demand: {why}. Last lines of its "
                                  f"log ({deployment.log_path}):\n{tail}", "model_failed_to_load")

    # -- unloading -------------------------------------------------------------------------------------------------
    def start_watching(self, interval: float = 1.0) -> None:
        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.unload_idle()
                except Exception:  # keep watching
                    log.exception("unloading idle on-demand models failed")

        self._thread = threading.Thread(target=loop, name="tuneforge-on-demand", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stops the unloader and waits for a pass in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def unload_idle(self) -> list[str]:
        """Unloads the running on-demand models without a request for `on_demand_idle_s`; returns their names. One
        first seen here (the server restarted) counts as used now."""
        idle_s = self.settings.on_demand_idle_s
        unloaded = []
        with self._admission:
            deployments = self._on_demand()
            with self._state:  # forget deployments deleted by hand
                present = {d.deployment_id for d in deployments}
                self._usage = {i: u for i, u in self._usage.items() if i in present or u.in_flight}
            for deployment in deployments:
                if deployment.status != "running":
                    continue
                with self._state:
                    idle_for = time.monotonic() - self._usage.setdefault(deployment.deployment_id, _Usage()).last_used
                if idle_for > idle_s and self._unload(deployment, f"no request for {idle_for:.0f} s "
                                                                  f"(on_demand_idle_s={idle_s:g})"):
                    unloaded.append(deployment.model.name)
        return unloaded

    def _unload(self, deployment: _OnDemand, reason: str) -> bool:
        """Stops and removes an idle on-demand deployment (the log stays, its last line says why); False when a
        request holds it or waits on it."""
        with self._state:
            if not self._is_idle(deployment.deployment_id):
                return False
            self._unloading.add(deployment.deployment_id)
        log.info("unloading on-demand model %s: %s", deployment.model.name, reason)
        self._remove(deployment.deployment_id, deployment.log_path, f"unloaded: {reason}")
        return True

    def _remove(self, deployment_id: int, log_path: str, note: str) -> None:
        with contextlib.suppress(OSError), open(log_path, "a", encoding="utf-8") as output:
            output.write(f"tuneforge: on-demand deployment {note}\n")
        try:
            with self._admission:
                self.deployments.delete(deployment_id)
        except NotFound:
            pass  # deleted by hand meanwhile
        finally:
            with self._state:
                self._unloading.discard(deployment_id)
                self._usage.pop(deployment_id, None)

    def _on_demand(self) -> list[_OnDemand]:
        with self.db.session() as session:
            rows = session.execute(select(Deployment, RegisteredModel).join(RegisteredModel)
                                   .where(Deployment.name.startswith(ON_DEMAND_PREFIX))).all()
            return [_OnDemand(d.id, _Model(m.id, m.name, resident_bytes(m)), d.status, d.log_path)
                    for d, m in rows if is_on_demand(d)]


def _too_large(model: _Model, budget: int) -> str:
    if budget == 0:
        return (f"model {model.name!r} is not deployed and serving on demand is off (on_demand_memory_bytes=0); "
                "deploy it (POST /deployments/createDeployment)")
    return (f"model {model.name!r} needs about {_gib(model.resident_bytes)} on demand (weights × {WEIGHTS_FACTOR:g} "
            f"+ {_gib(RUNTIME_BYTES)} for its serving process), more than the whole budget on_demand_memory_bytes="
            f"{budget} ({_gib(budget)}); raise TUNEFORGE_ON_DEMAND_MEMORY_BYTES, or deploy it "
            "(POST /deployments/createDeployment)")


def _gib(size: int) -> str:
    return f"{size / 2**30:.2f} GiB"


def _nothing() -> None:
    pass


async def _answers(client: httpx.AsyncClient, port: int | None) -> bool:
    if not port:
        return False
    try:
        return (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 200
    except httpx.HTTPError:
        return False
