"""The device ledger: which device each job holds, read from the rows of every kind that holds one — running or
stopping tasks, running evaluations, live deployments. The scheduler starts a task only on devices nobody holds;
an evaluation or a deployment claims its GPUs here before its process starts, and that process sees only them
(CUDA_VISIBLE_DEVICES, by the same rules as a training worker).

On a host without GPUs the devices are CPU slots, a training concurrency limit (settings.cpu_slots): evaluations and
deployments claim none there. A deployment is long-lived and the default host has few slots; holding one would keep
training off the host for as long as a model is served, for a process that mostly waits for requests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Literal

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from tuneforge.planning.devices import Device
from tuneforge.rundir.launch import worker_environment
from tuneforge.schemas import ConfigProblem
from tuneforge.schemas.tasks import TaskStatus
from tuneforge.service.errors import Conflict
from tuneforge.store import Deployment, Evaluation, RegisteredModel, Task
from tuneforge.store.scope import ALL_OWNERS, Actor

HolderKind = Literal["task", "evaluation", "deployment"]
TASK_HOLDING = (TaskStatus.RUNNING, TaskStatus.STOPPING)  # a stopping worker still uses its devices
EVALUATION_HOLDING = ("running",)
DEPLOYMENT_HOLDING = ("starting", "running", "restarting")  # a crashed one keeps its GPUs for its restart

# Claims take turns in this server: two evaluations or deployments created at once never take the same free GPU.
_claims = threading.Lock()


@dataclass(frozen=True)
class Holder:
    kind: HolderKind
    id: int
    name: str | None  # the task's or deployment's name, the evaluated model's; None where hidden from the viewer
    owner_id: int | None

    def describe(self) -> str:
        if self.name is None:
            return f"another user's {self.kind} (id {self.id})"
        if self.kind == "evaluation":
            return f"evaluation {self.id} of model {self.name!r}"
        return f"{self.kind} {self.name!r} (id {self.id})"


def held_devices(session: Session) -> dict[int, Holder]:
    """Every held device index and its holder, whoever owns it: the hardware is shared by every user."""
    tasks = select(Task.id, Task.name, Task.owner_id, Task.devices).where(Task.status.in_(TASK_HOLDING))
    evaluations = (select(Evaluation.id, RegisteredModel.name, Evaluation.owner_id, Evaluation.devices)
                   .join(RegisteredModel, RegisteredModel.id == Evaluation.model_id)
                   .where(Evaluation.status.in_(EVALUATION_HOLDING)))
    deployments = (select(Deployment.id, Deployment.name, Deployment.owner_id, Deployment.devices)
                   .where(Deployment.status.in_(DEPLOYMENT_HOLDING)))
    queries: list[tuple[HolderKind, Select[tuple[int, str, int | None, list[Any]]]]] = [
        ("task", tasks), ("evaluation", evaluations), ("deployment", deployments)]
    held: dict[int, Holder] = {}
    for kind, query in queries:
        for row_id, name, owner_id, devices in session.execute(query, execution_options=ALL_OWNERS):
            for index in devices or []:
                held.setdefault(int(index), Holder(kind, row_id, name, owner_id))
    return held


def as_seen_by(holder: Holder, actor: Actor | None) -> Holder:
    """The holder as `actor` may see it: a member does not learn the names of other users' work."""
    if actor is None or actor.is_admin or holder.owner_id in (None, actor.user_id):
        return holder
    return replace(holder, name=None)


def gpu_host(devices: list[Device]) -> bool:
    return bool(devices) and devices[0].kind == "cuda"


@contextmanager
def claiming() -> Iterator[None]:
    """Hold around reading the ledger and committing the row that records the claim."""
    with _claims:
        yield


def claim_gpus(session: Session, devices: list[Device], count: int, what: str, actor: Actor | None) -> list[int]:
    """`count` free GPUs for `what` (an evaluation, a deployment), lowest index first; [] on a CPU host or for
    count 0. Conflict (409) naming who holds the others when too few are free: never oversubscribed. Call inside
    `claiming()`, and record the result on the row before leaving it."""
    if count <= 0 or not gpu_host(devices):
        return []
    held = held_devices(session)
    free = [d.index for d in devices if d.index not in held]
    if len(free) >= count:
        return free[:count]
    holders = "; ".join(f"GPU {index} is held by {as_seen_by(holder, actor).describe()}"
                        for index, holder in sorted(held.items()))
    wanted = "a GPU" if count == 1 else f"{count} GPUs"
    raise Conflict(f"{what} needs {wanted} and {len(free)} of {len(devices)} are free: {holders}; stop one of them "
                   "or try again when one ends",
                   [ConfigProblem("devices", f"{len(free)} free, {count} needed")])


def job_environment(base: dict[str, str], devices: list[Device], held: list[int]) -> dict[str, str]:
    """The environment of an evaluation or serving process. On a GPU host it sees exactly the GPUs it holds, in
    NVML's numbering (none: it runs on the CPU and cannot touch a GPU a task holds); on a CPU host the platform
    knows no GPU to keep apart and the environment is `base`."""
    if not gpu_host(devices):
        return dict(base)
    return worker_environment(base, held, "cuda", None) if held else worker_environment(base, [], "cpu", None)
