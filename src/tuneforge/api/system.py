"""GET /system/gpus: the device inventory and what is running on it; /health for probes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from tuneforge.api.deps import PlatformDep, TasksDep, get_platform
from tuneforge.api.errors import ErrorBody, error_body
from tuneforge.service.views import DeviceInventory
from tuneforge.store.database import DatabaseUnavailable

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


@router.get("/health", response_model=Health, summary="Liveness: 200 when the database answers, else 503 with why",
            responses={503: {"model": ErrorBody, "description": "The database does not answer"}})
async def health(platform: PlatformDep) -> Health | JSONResponse:
    try:
        await run_in_threadpool(platform.db.check)
    except DatabaseUnavailable as exc:
        return JSONResponse(error_body("database_unavailable", f"the database does not answer: {exc}"),
                            status_code=503)
    return Health(status="ok")
