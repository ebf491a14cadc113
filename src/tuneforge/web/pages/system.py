"""The system page: the devices tasks run on (GPUs from NVML, or the CPU slots) with what runs on each, and the
queue: running tasks, then pending ones in the order they will start."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from tuneforge.api.system import get_gpus
from tuneforge.web.rendering import CONSOLE, render

router = APIRouter(prefix=CONSOLE)
QUEUE_SHOWN = 20  # pending tasks listed (the oldest first: the next to start); the rest are counted
# While tasks run or wait the page follows the queue every 2 s; an idle host only needs its free memory now and then.
BUSY_REFRESH_S = 2
IDLE_REFRESH_S = 10


def _queue(request: Request) -> dict[str, Any]:
    tasks = request.app.state.platform.tasks
    running = tasks.list("running,stopping", page=1, page_size=200)
    first = tasks.list("pending", page=1, page_size=QUEUE_SHOWN)
    pending = first["items"]
    if first["total"] > QUEUE_SHOWN:
        # the list is newest first; the queue starts at its end: the last two pages hold the oldest QUEUE_SHOWN
        last = -(-first["total"] // QUEUE_SHOWN)
        pending = (tasks.list("pending", page=last - 1, page_size=QUEUE_SHOWN)["items"]
                   + tasks.list("pending", page=last, page_size=QUEUE_SHOWN)["items"])[-QUEUE_SHOWN:]
    return {"running": running["items"], "running_total": running["total"],
            "pending": list(reversed(pending)), "pending_total": first["total"]}


def _context(request: Request) -> dict[str, Any]:
    inventory = get_gpus(request)
    for device in inventory["devices"]:
        total, free = device["totalMemory"], device["freeMemory"]
        device["usedPercent"] = round(100 * (total - free) / total, 1) if total else 0.0
    queue = _queue(request)
    busy = queue["running_total"] or queue["pending_total"]
    return {"inventory": inventory, **queue, "refresh_s": BUSY_REFRESH_S if busy else IDLE_REFRESH_S,
            "busy_devices": sum(1 for d in inventory["devices"] if d["busy"])}


@router.get("/system", response_class=HTMLResponse)
def system_page(request: Request) -> HTMLResponse:
    return render(request, "system/page.html", **_context(request))


@router.get("/system/live", response_class=HTMLResponse)
def system_live(request: Request) -> HTMLResponse:
    return render(request, "system/_live.html", **_context(request))
