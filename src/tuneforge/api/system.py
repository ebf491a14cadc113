"""GET /system/gpus: the device inventory and what is running on it; /health for probes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select

from tuneforge.schemas.tasks import TaskStatus
from tuneforge.store import Task

router = APIRouter(tags=["system"])


@router.get("/system/gpus", summary="Devices (GPUs via NVML, or CPU slots), their memory and the tasks on them")
def get_gpus(request: Request) -> dict[str, Any]:
    platform = request.app.state.platform
    with platform.db.session() as session:
        rows = session.execute(select(Task.id, Task.name, Task.devices).where(
            Task.status.in_((TaskStatus.RUNNING, TaskStatus.STOPPING))))
        users = {index: {"taskId": tid, "taskName": name} for tid, name, devices in rows for index in devices or []}
        pending = session.scalar(select(Task.id).where(Task.status == TaskStatus.PENDING).limit(1)) is not None
    devices = [{"index": d.index, "kind": d.kind, "name": d.name, "totalMemory": d.total_memory,
                "freeMemory": d.free_memory, "busy": d.index in users, "task": users.get(d.index)}
               for d in platform.devices]
    return {"kind": devices[0]["kind"] if devices else "cpu", "devices": devices, "queued": pending}


@router.get("/health", summary="Liveness")
def health() -> dict[str, str]:
    return {"status": "ok"}
