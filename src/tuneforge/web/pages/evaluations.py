"""Evaluation pages: the list, and one evaluation's page — its progress while it runs, then the before / after report:
the scores side by side with the change (better / worse), and the best and worst samples with every model's answer
to the same prompt. Stop and delete go to the JSON API from static/evaluations.js."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from tuneforge.service.errors import MAX_PAGE, ServiceError
from tuneforge.web.rendering import CONSOLE, HTMX_STOP_POLLING, render

router = APIRouter(prefix=CONSOLE)
PAGE_SIZE = 20
REFRESH_S = 2
# The report's rows: (score, digits shown, True when lower is better).
METRICS: tuple[tuple[str, int, bool], ...] = (
    ("eval_loss", 4, True), ("perplexity", 3, True), ("bleu_4", 2, False), ("rouge_1", 2, False),
    ("rouge_2", 2, False), ("rouge_l", 2, False),
)
ALL_SAMPLES_SHOWN = 200  # the "every sample" table stops here; results.json keeps them all


def _service(request: Request) -> Any:
    return request.app.state.platform.evaluations


def _model_names(request: Request) -> dict[int, str]:
    return {m["id"]: m["name"] for m in request.app.state.platform.models.list()["items"]}


@router.get("/evaluations", response_class=HTMLResponse)
def evaluation_list(request: Request, page: int = 1,
                    model_id: int | None = Query(None, alias="modelId")) -> HTMLResponse:
    page = min(max(1, page), MAX_PAGE)
    result = _service(request).list(model_id, page, PAGE_SIZE)
    pages = max(1, -(-result["total"] // PAGE_SIZE))
    return render(request, "evaluations/list.html", items=result["items"], total=result["total"], page=page,
                  pages=pages, model_id=model_id, model_names=_model_names(request))


def score_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per score: each model's value, and with two models the change (after − before) and whether it is
    better or worse (loss and perplexity fall when a model gets better, BLEU and ROUGE rise)."""
    change = report.get("change") or {}
    rows = []
    for key, digits, lower_is_better in METRICS:
        values = [scores.get(key) for scores in report["models"]]
        if all(value is None for value in values):
            continue  # not measured (compute_loss or predict was off)
        delta = change.get(key)
        verdict = None
        if delta is not None and abs(delta) >= 10 ** -digits:
            verdict = "better" if (delta < 0) == lower_is_better else "worse"
        rows.append({"key": key, "digits": digits, "values": values, "change": delta, "verdict": verdict,
                     "lower_is_better": lower_is_better})
    return rows


def _context(request: Request, evaluation_id: int) -> dict[str, Any]:
    evaluation = _service(request).get(evaluation_id)
    report = evaluation.get("report")
    labels = [scores["label"] for scores in report["models"]] if report else []
    return {"evaluation": evaluation, "report": report, "rows": score_rows(report) if report else [],
            "labels": labels, "evaluated": labels[-1] if labels else None, "refresh_s": REFRESH_S,
            "all_samples_shown": ALL_SAMPLES_SHOWN, "active": evaluation["status"] == "running"}


@router.get("/evaluations/{evaluation_id:int}", response_class=HTMLResponse)
def evaluation_detail(request: Request, evaluation_id: int) -> HTMLResponse:
    try:
        context = _context(request, evaluation_id)
    except ServiceError:
        return render(request, "error.html", status_code=404, message_key="evaluations.not_found",
                      message_values={"id": evaluation_id})
    model_name = _model_names(request).get(context["evaluation"]["modelId"], "")
    return render(request, "evaluations/detail.html", model_name=model_name, **context)


@router.get("/evaluations/{evaluation_id:int}/live", response_class=HTMLResponse)
def evaluation_live(request: Request, evaluation_id: int) -> HTMLResponse:
    """Progress while the job runs; the swapped-in copy of a finished job carries the report and no trigger."""
    try:
        context = _context(request, evaluation_id)
    except ServiceError:
        return render(request, "evaluations/_gone.html", status_code=HTMX_STOP_POLLING, evaluation_id=evaluation_id)
    return render(request, "evaluations/_live.html", **context)
