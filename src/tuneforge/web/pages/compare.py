"""Compare tasks: their loss / eval-loss / learning-rate curves overlaid (static/compare.js reads getTaskMetrics)
and a diff of their configurations, where a key a task did not set shows the schema's default."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from tuneforge.service.errors import ServiceError
from tuneforge.web.parameter_form import as_text, copied_values, schema_defaults
from tuneforge.web.rendering import CONSOLE, render

router = APIRouter(prefix=CONSOLE)
MAX_COMPARED = 8
PICKER_SIZE = 50
# What each task is, before its training arguments.
TASK_ROWS: tuple[tuple[str, str], ...] = (
    ("status", "status"), ("base_model", "baseModel"), ("dataset_path", "datasetPath"), ("stage", "stage"),
    ("finetuning_type", "finetuning_type"),
)
RESULT_ROWS: tuple[str, ...] = ("train_loss", "eval_loss", "perplexity", "train_runtime")


def parse_ids(values: list[str]) -> list[int]:
    """?ids=1,2,3 or ?ids=1&ids=2 (the picker's checkboxes); unknown text is ignored, order kept, no repeats."""
    ids: list[int] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if part.isdigit() and int(part) not in ids:
                ids.append(int(part))
    return ids[:MAX_COMPARED]


def config_rows(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per key: each task's value (its own, or the default it ran with) and whether they differ."""
    defaults = schema_defaults()
    own = []
    for task in tasks:
        values, extra = copied_values(task["training_args"])
        own.append(values | extra)
    rows = []
    for attribute, label in TASK_ROWS:
        values = [as_text(task[attribute]) for task in tasks]
        rows.append({"key": label, "values": values, "set": [True] * len(tasks), "differs": len(set(values)) > 1})
    metrics = [task["metrics"] or {} for task in tasks]
    for key in RESULT_ROWS:
        if any(key in m for m in metrics):
            values = [_number(m.get(key)) for m in metrics]
            rows.append({"key": key, "values": values, "set": [key in m for m in metrics],
                         "differs": len(set(values)) > 1, "result": True})
    for key in sorted(set().union(*own)):
        values = [as_text(args.get(key, defaults.get(key))) for args in own]
        rows.append({"key": key, "values": values, "set": [key in args for args in own],
                     "differs": len(set(values)) > 1})
    return rows


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else as_text(value)


@router.get("/compare", response_class=HTMLResponse)
def compare(request: Request, ids: list[str] = Query(default=[]), q: str = "") -> HTMLResponse:
    service = request.app.state.platform.tasks
    chosen, missing = [], []
    for task_id in parse_ids(ids):
        try:
            chosen.append(service.get(task_id).model_dump(by_alias=False))
        except ServiceError:
            missing.append(task_id)
    picker = service.list(name=q.strip() or None, page_size=PICKER_SIZE)["items"]
    chosen_ids = [task["id"] for task in chosen]
    picker = [task for task in chosen if task["id"] not in {p["id"] for p in picker}] + picker
    return render(request, "compare.html", tasks=chosen, chosen_ids=chosen_ids, missing=missing, picker=picker,
                  q=q, rows=config_rows(chosen) if chosen else [], max_compared=MAX_COMPARED)
