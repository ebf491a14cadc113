"""Deployment pages: the list (status, restarts, errors; create) and a deployment's page (health, the serving log,
the command). Stop / start / delete and create go to the JSON API from static/deployments.js."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from tuneforge.service.errors import ServiceError
from tuneforge.service.models.serving_engines import ENGINES
from tuneforge.web.rendering import CONSOLE, HTMX_STOP_POLLING, render

router = APIRouter(prefix=CONSOLE)
# A starting or restarting deployment is followed every 2 s; a running one every 10 s, to notice a crash (and the
# restart the service makes) without a reload; a stopped or failed one is not polled.
TRANSITION_REFRESH_S = 2
RUNNING_REFRESH_S = 10
TRANSITIONS = ("starting", "restarting")
LOG_LINES = 200


def _service(request: Request) -> Any:
    return request.app.state.platform.deployments


def refresh_seconds(statuses: list[str]) -> int | None:
    """How often a view of deployments in these states refreshes; None: it does not."""
    if any(status in TRANSITIONS for status in statuses):
        return TRANSITION_REFRESH_S
    if "running" in statuses:
        return RUNNING_REFRESH_S
    return None


def _listing(request: Request) -> dict[str, Any]:
    items = _service(request).list()["items"]
    return {"items": items, "total": len(items), "refresh_s": refresh_seconds([d["status"] for d in items])}


@router.get("/deployments", response_class=HTMLResponse)
def deployment_list(request: Request, model: int | None = None) -> HTMLResponse:
    models = [m for m in request.app.state.platform.models.list()["items"] if m["status"] == "ready"]
    return render(request, "deployments/list.html", models=models, engines=ENGINES, chosen_model=model,
                  **_listing(request))


@router.get("/deployments/rows", response_class=HTMLResponse)
def deployment_rows(request: Request) -> HTMLResponse:
    return render(request, "deployments/_rows.html", **_listing(request))


def _detail(request: Request, deployment_id: int) -> dict[str, Any]:
    service = _service(request)
    deployment = service.get(deployment_id)
    return {"deployment": deployment, "log": service.logs(deployment_id, LOG_LINES)["lines"],
            "refresh_s": refresh_seconds([deployment["status"]])}


@router.get("/deployments/{deployment_id:int}", response_class=HTMLResponse)
def deployment_detail(request: Request, deployment_id: int) -> HTMLResponse:
    try:
        context = _detail(request, deployment_id)
    except ServiceError:
        return render(request, "error.html", status_code=404, message_key="deployments.not_found",
                      message_values={"id": deployment_id})
    return render(request, "deployments/detail.html", **context)


@router.get("/deployments/{deployment_id:int}/live", response_class=HTMLResponse)
def deployment_live(request: Request, deployment_id: int) -> HTMLResponse:
    """Status, health, error and log: swapped in while the deployment starts (and slowly while it runs)."""
    try:
        context = _detail(request, deployment_id)
    except ServiceError:
        return render(request, "deployments/_gone.html", status_code=HTMX_STOP_POLLING, deployment_id=deployment_id)
    return render(request, "deployments/_live.html", **context)
