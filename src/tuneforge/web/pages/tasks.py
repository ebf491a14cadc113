"""Task list and task detail pages. They read through the service; their buttons call the JSON API."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from tuneforge.schemas.stages import STAGES
from tuneforge.schemas.tasks import ACTIVE_STATUSES, TaskStatus
from tuneforge.service.errors import MAX_PAGE, ServiceError
from tuneforge.web.rendering import CONSOLE, HTMX_STOP_POLLING, render

router = APIRouter(prefix=CONSOLE)
PAGE_SIZE = 20
ACTIVE = ",".join(sorted(ACTIVE_STATUSES))
# Seconds between live refreshes; the bar is one update every 2 s while a task runs.
LIST_REFRESH_S = 2
DETAIL_REFRESH_S = 1
# While a GRPO / PPO task runs, its sampled completions are looked at again this often.
SAMPLES_REFRESH_S = 5
# Figures the loss and learning-rate charts draw already: no chart of their own.
BASE_SERIES = frozenset({"loss", "eval_loss", "learning_rate", "grad_norm"})


def _platform(request: Request) -> Any:
    return request.app.state.platform


def _filters(status: str | None, q: str | None, experiment: str | None, page: int) -> dict[str, Any]:
    """The list's filters as given in the query string; bad values are dropped rather than shown as an error."""
    statuses = [s for s in (status or "").split(",") if s in TaskStatus.__members__.values()]
    experiment_id = int(experiment) if experiment and experiment.isdigit() else None
    return {"status": ",".join(statuses), "q": (q or "").strip(), "experiment": experiment_id,
            "page": min(max(1, page), MAX_PAGE)}


def _listing(request: Request, filters: dict[str, Any]) -> dict[str, Any]:
    tasks = _platform(request).tasks
    result = tasks.list(filters["status"] or None, None, filters["q"] or None, filters["experiment"],
                        filters["page"], PAGE_SIZE)
    pages = max(1, -(-result["total"] // PAGE_SIZE))
    # Refresh while any task anywhere is active, not only on this page: a pending task elsewhere may start.
    any_active = tasks.list(ACTIVE, page=1, page_size=1)["total"] > 0
    return {"items": result["items"], "total": result["total"], "pages": pages, "filters": filters,
            "any_active": any_active, "refresh_s": LIST_REFRESH_S}


@router.get("/tasks", response_class=HTMLResponse)
def task_list(request: Request, status: str | None = None, q: str | None = None, experiment: str | None = None,
              page: int = 1) -> HTMLResponse:
    filters = _filters(status, q, experiment, page)
    experiments = _platform(request).experiments.list()
    return render(request, "tasks/list.html", experiments=experiments, statuses=list(TaskStatus),
                  **_listing(request, filters))


@router.get("/tasks/rows", response_class=HTMLResponse)
def task_rows(request: Request, status: str | None = None, q: str | None = None, experiment: str | None = None,
              page: int = 1) -> HTMLResponse:
    """The list's table alone: what the page's htmx refresh swaps in."""
    return render(request, "tasks/_rows.html", **_listing(request, _filters(status, q, experiment, page)))


@router.get("/tasks/{task_id:int}", response_class=HTMLResponse)
def task_detail(request: Request, task_id: int) -> HTMLResponse:
    try:
        task = _platform(request).tasks.get(task_id)
    except ServiceError:
        return render(request, "error.html", status_code=404, message_key="error.task_not_found",
                      message_values={"id": task_id})
    active = task.status in ACTIVE_STATUSES
    samples = _samples(request, task_id, None) if samples_stage(task.stage) else None
    return render(request, "tasks/detail.html", task=task.model_dump(by_alias=False),
                  refresh_s=DETAIL_REFRESH_S, active=active, stage_charts=stage_charts(task.stage),
                  samples=samples, samples_refresh_s=SAMPLES_REFRESH_S)


def stage_charts(stage: str) -> list[str]:
    """The figures the stage table declares for `stage` that get a chart of their own (the page shows each once
    the task has points for it)."""
    row = STAGES.get(stage)
    return [name for name in row.metrics if name not in BASE_SERIES] if row else []


def samples_stage(stage: str) -> bool:
    """Stages whose model writes its own answers to prompts (GRPO, PPO): they sample completions to show."""
    row = STAGES.get(stage)
    return row is not None and row.record_kind == "prompt"


def _samples(request: Request, task_id: int, step: int | None) -> dict[str, Any]:
    return _platform(request).tasks.samples(task_id, step).model_dump(by_alias=False)


@router.get("/tasks/{task_id:int}/samples", response_class=HTMLResponse)
def task_samples(request: Request, task_id: int, step: str | None = None) -> HTMLResponse:
    """The sampled completions of one step (empty or not a number: the latest step, followed while the task runs):
    what the detail page's step selector swaps in."""
    chosen = int(step) if step and step.isascii() and step.isdigit() and len(step) < 10 else None
    try:
        task = _platform(request).tasks.get(task_id)
        samples = _samples(request, task_id, chosen)
    except ServiceError:  # deleted meanwhile: an empty, hidden panel that polls no more
        return render(request, "tasks/_samples.html", status_code=HTMX_STOP_POLLING, task={"id": task_id},
                      samples=None, active=False, samples_refresh_s=SAMPLES_REFRESH_S, following=True)
    return render(request, "tasks/_samples.html", task=task.model_dump(by_alias=False), samples=samples,
                  active=task.status in ACTIVE_STATUSES, samples_refresh_s=SAMPLES_REFRESH_S,
                  following=chosen is None)


@router.get("/tasks/{task_id:int}/live", response_class=HTMLResponse)
def task_live(request: Request, task_id: int) -> HTMLResponse:
    """The detail page's status panel alone, swapped in every DETAIL_REFRESH_S seconds while the task is active."""
    try:
        task = _platform(request).tasks.get(task_id)
    except ServiceError:
        # 286 tells htmx to stop polling; the message replaces the panel (the task was deleted elsewhere).
        return render(request, "tasks/_gone.html", status_code=HTMX_STOP_POLLING, task_id=task_id)
    return render(request, "tasks/_live_response.html", task=task.model_dump(by_alias=False),
                  refresh_s=DETAIL_REFRESH_S, active=task.status in ACTIVE_STATUSES)
