"""The create-task page (the guided steps) and its copy variant (?copy=<id>: the same form, pre-filled).

The page only renders the form; the browser sends it to POST /finetuning/estimateTask before the confirm step and
to POST /finetuning/createTask on confirm (static/task_form.js), so what is validated and created is exactly what
the API does.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from tuneforge.service.errors import ServiceError
from tuneforge.web.parameter_form import STEPS, copied_values, form_steps
from tuneforge.web.rendering import CONSOLE, render

router = APIRouter(prefix=CONSOLE)


def _platform(request: Request) -> Any:
    return request.app.state.platform


def _copy_name(request: Request, name: str) -> str:
    """<name>-copy, or -copy-2, -copy-3, … when taken (the API's copyTask names copies the same way)."""
    base = name.removesuffix("-copy")[:50]
    for n in range(1, 100):
        candidate = f"{base}-copy" if n == 1 else f"{base}-copy-{n}"
        found = _platform(request).tasks.list(name=candidate, page_size=200)["items"]
        if all(item["name"] != candidate for item in found):
            return candidate
    return f"{base}-copy"


def _pickers(request: Request) -> dict[str, Any]:
    """Suggestions for the free-text model and dataset inputs, from the registries."""
    platform = _platform(request)
    models = platform.models.list(kind="base")["items"]
    datasets = platform.datasets.list(page_size=200)["items"]
    return {"model_options": models, "dataset_options": datasets,
            "experiments": platform.experiments.list(), "devices": platform.devices,
            "executors": list(platform.executor.executors)}


@router.get("/tasks/new", response_class=HTMLResponse)
def new_task(request: Request, copy: int | None = None, experiment: int | None = None) -> HTMLResponse:
    top: dict[str, Any] = {"name": "", "description": "", "baseModel": "", "datasetPath": "", "outputPath": "",
                           "experimentId": experiment, "gpuConfig": {}}
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    source = None
    if copy is not None:
        try:
            source = _platform(request).tasks.get(copy)
        except ServiceError:
            return render(request, "error.html", status_code=404, message_key="error.task_not_found",
                          message_values={"id": copy})
        values, extra = copied_values(source.training_args)
        top |= {"name": _copy_name(request, source.name), "description": source.description,
                "baseModel": source.base_model, "datasetPath": source.dataset_path,
                "experimentId": source.experiment_id, "gpuConfig": source.gpu_config or {}}
    return render(request, "tasks/new.html", steps=STEPS, sections=form_steps(values), top=top, extra_args=extra,
                  source=source, **_pickers(request))
