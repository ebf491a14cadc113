"""GET /system/gpus: the device inventory and what is running on it; /health for probes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from tuneforge.api.deps import TasksDep, get_platform
from tuneforge.service.views import DeviceInventory

router = APIRouter(tags=["system"])


class Health(BaseModel):
    status: str


# `name` keeps the operation id this route has always had: the plain function of that name below is the console's.
@router.get("/system/gpus", name="get_gpus", response_model=DeviceInventory,
            summary="Devices (GPUs via NVML, or CPU slots), their memory and the tasks on them")
def get_device_inventory(tasks: TasksDep) -> DeviceInventory:
    return tasks.device_inventory()


def get_gpus(request: Request) -> dict[str, Any]:
    """The inventory as /system/gpus sends it, as a dict: the console's system page reads and extends it."""
    return get_platform(request).tasks.device_inventory().model_dump(by_alias=True)


@router.get("/health", response_model=Health, summary="Liveness")
def health() -> Health:
    return Health(status="ok")
