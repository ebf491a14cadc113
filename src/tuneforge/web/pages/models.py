"""Model registry pages: the list (base and fine-tuned models, imports with their progress, register and publish)
and a model's page (lineage, evaluations, exports, deployments; deploy / export / evaluate / delete). They read
through the services; every action goes to the JSON API from static/models.js, as any other client does."""

from __future__ import annotations

from typing import Any, get_args

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from tuneforge.schemas.export_spec import ExportSpec, GgufType, GptqGroupSize
from tuneforge.service.errors import ServiceError
from tuneforge.service.models.serving_engines import ENGINES
from tuneforge.web.rendering import CONSOLE, HTMX_STOP_POLLING, render

router = APIRouter(prefix=CONSOLE)
PAGE_SIZE = 20
# While an import, an export or an evaluation runs, its panel refreshes this often (the bar: every 2 s or better).
REFRESH_S = 2
KINDS = ("base", "finetuned")
EXPORT_DTYPES = ("auto", "float32", "float16", "bfloat16")
# All of them, also where llama-cpp-python is missing: choosing a K-quant then says how to install it.
GGUF_TYPES: tuple[str, ...] = get_args(GgufType)
GPTQ_BITS = (4, 8)
# The dialog's empty choice leaves the group size to the server's default; the others follow it, -1 (one per row) last.
GPTQ_DEFAULT_GROUP_SIZE: int = ExportSpec.model_fields["quantization_group_size"].default
GPTQ_GROUP_SIZES: tuple[int, ...] = tuple(sorted((size for size in get_args(GptqGroupSize)
                                                  if size != GPTQ_DEFAULT_GROUP_SIZE),
                                                 key=lambda size: (size < 0, size)))
EVAL_SPLITS = ("test", "valid", "train")
# The metrics a model's page shows first; the rest of what training reported is folded below them.
HEADLINE_METRICS = ("train_loss", "eval_loss", "perplexity", "eval_perplexity", "epoch", "trained_tokens",
                    "train_runtime")
PUBLISHABLE_TASKS = 50  # the publish dialog offers the newest completed / stopped tasks


def _platform(request: Request) -> Any:
    return request.app.state.platform


def _not_found(request: Request, model_id: int) -> HTMLResponse:
    return render(request, "error.html", status_code=404, message_key="models.not_found",
                  message_values={"id": model_id})


# -- list ------------------------------------------------------------------------------------------------------
def _listing(request: Request, kind: str | None, q: str | None, page: int) -> dict[str, Any]:
    kind = kind if kind in KINDS else ""
    query = (q or "").strip()
    result = _platform(request).models.list(kind or None, None, query or None)
    items = [item | {"headlineLoss": headline_loss(item["metrics"])} for item in result["items"]]
    pages = max(1, -(-len(items) // PAGE_SIZE))
    page = min(max(1, page), pages)
    return {"items": items[(page - 1) * PAGE_SIZE: page * PAGE_SIZE], "total": len(items), "pages": pages,
            "page": page, "kind": kind, "q": query, "refresh_s": REFRESH_S,
            "any_importing": any(item["status"] == "importing" for item in items)}


def headline_loss(metrics: dict[str, Any]) -> float | None:
    """The one number the list shows: the eval loss when the task evaluated, else the final training loss."""
    for key in ("eval_loss", "train_loss", "loss"):
        if metrics.get(key) is not None:
            return metrics[key]
    return None


@router.get("/models", response_class=HTMLResponse)
def model_list(request: Request, kind: str | None = None, q: str | None = None, page: int = 1) -> HTMLResponse:
    tasks = _platform(request).tasks.list("completed,stopped", page=1, page_size=PUBLISHABLE_TASKS)["items"]
    return render(request, "models/list.html", kinds=KINDS, publishable=tasks, **_listing(request, kind, q, page))


@router.get("/models/rows", response_class=HTMLResponse)
def model_rows(request: Request, kind: str | None = None, q: str | None = None, page: int = 1) -> HTMLResponse:
    """The list's table alone: what the list swaps in while an import copies (and after an action)."""
    return render(request, "models/_rows.html", **_listing(request, kind, q, page))


# -- one model -------------------------------------------------------------------------------------------------
def model_exports(request: Request, model_id: int) -> list[dict[str, Any]]:
    """This model's export jobs, newest first."""
    return [job for job in _platform(request).exports.list()["items"] if job["modelId"] == model_id]


def _jobs(request: Request, model: dict[str, Any]) -> dict[str, Any]:
    """What the model's live panel shows: its import state, evaluations (synced with their job folders) and exports."""
    evaluations = _platform(request).evaluations.list(model["id"], 1, 10)
    exports = model_exports(request, model["id"])
    active = (model["status"] == "importing" or any(e["status"] == "running" for e in evaluations["items"])
              or any(x["status"] == "running" for x in exports))
    return {"evaluations": evaluations["items"], "evaluation_total": evaluations["total"], "exports": exports,
            "active": active, "refresh_s": REFRESH_S}


@router.get("/models/{model_id:int}", response_class=HTMLResponse)
def model_detail(request: Request, model_id: int) -> HTMLResponse:
    platform = _platform(request)
    try:
        model = platform.models.get(model_id)
    except ServiceError:
        return _not_found(request, model_id)
    deployments = [d for d in platform.deployments.list()["items"] if d["modelId"] == model_id]
    return render(request, "models/detail.html", model=model, deployments=deployments, engines=ENGINES,
                  dtypes=EXPORT_DTYPES, gguf_types=GGUF_TYPES, gptq_bits=GPTQ_BITS,
                  gptq_group_sizes=GPTQ_GROUP_SIZES, gptq_default_group_size=GPTQ_DEFAULT_GROUP_SIZE,
                  splits=EVAL_SPLITS, headline_metrics=HEADLINE_METRICS, **_jobs(request, model))


@router.get("/models/{model_id:int}/jobs", response_class=HTMLResponse)
def model_jobs(request: Request, model_id: int) -> HTMLResponse:
    """The model's live panel (import, evaluations, exports), swapped in every REFRESH_S s while one runs."""
    try:
        model = _platform(request).models.get(model_id)
    except ServiceError:
        return render(request, "models/_gone.html", status_code=HTMX_STOP_POLLING, model_id=model_id)
    return render(request, "models/_jobs.html", model=model, **_jobs(request, model))
