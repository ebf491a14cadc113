"""Evaluation pages: the list, the create form, and one evaluation's page — its progress while it runs, then the
before / after report: the scores side by side with the change (better / worse), each grader's mean per model, and
the best and worst samples with every model's answer to the same prompt and its grades. Stop and delete go to the
JSON API from static/evaluations.js.

The create form posts to this page, which validates it as /evaluations/createEvaluation's body and calls that route's
own function, so the console answers exactly as the API does (graders: stored ones, picked by name)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from tuneforge.api.evaluations import CreateEvaluationBody, create_evaluation
from tuneforge.service.errors import MAX_PAGE, MAX_PAGE_SIZE, ServiceError
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
GRADER_DIGITS = 3  # grader scores are mostly 0-1: three digits tell 0.875 from 0.9
SPLITS = ("test", "valid", "train")
# An evaluation job cannot reach a judge model: the form shows these types but does not offer them.
JUDGE_TYPES = ("score_model", "label_model")


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
        rows.append({"key": key, "digits": digits, "values": values, "change": delta,
                     "verdict": _verdict(delta, digits, lower_is_better), "lower_is_better": lower_is_better})
    return rows


def grader_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per grader, in the order the request named them: each model's mean score (higher is better), how many
    answers it could not grade (they count 0 in the mean), and with two models the change."""
    models = report["models"]
    change = (report.get("change") or {}).get("graders") or {}
    names = dict.fromkeys(name for scores in models for name in scores.get("graders") or {})
    return [{"name": name, "digits": GRADER_DIGITS, "change": change.get(name),
             "values": [(scores.get("graders") or {}).get(name) for scores in models],
             "failures": [(scores.get("grader_failures") or {}).get(name, 0) for scores in models],
             "verdict": _verdict(change.get(name), GRADER_DIGITS, False)} for name in names]


def _verdict(delta: float | None, digits: int, lower_is_better: bool) -> str | None:
    """better / worse when the change shows at the digits displayed; None when it does not."""
    if delta is None or abs(delta) < 10 ** -digits:
        return None
    return "better" if (delta < 0) == lower_is_better else "worse"


def _context(request: Request, evaluation_id: int) -> dict[str, Any]:
    evaluation = _service(request).get(evaluation_id)
    report = evaluation.get("report")
    labels = [scores["label"] for scores in report["models"]] if report else []
    return {"evaluation": evaluation, "report": report, "rows": score_rows(report) if report else [],
            "grader_rows": grader_rows(report) if report else [], "labels": labels,
            "evaluated": labels[-1] if labels else None, "refresh_s": REFRESH_S,
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


# -- create ----------------------------------------------------------------------------------------------------
@dataclass
class EvaluationForm:
    """What the create form holds: defaults at first, what was typed after a refusal."""

    model_id: int | None = None
    dataset: str = ""
    split: str = "test"
    max_samples: str = "50"
    max_new_tokens: str = "128"
    compare_with_base: bool = True
    graders: list[str] = field(default_factory=list)
    problems: list[dict[str, str]] = field(default_factory=list)


def _new_form(request: Request, form: EvaluationForm, status_code: int = 200) -> HTMLResponse:
    platform = request.app.state.platform
    models = [m for m in platform.models.list()["items"] if m["status"] == "ready"]
    stored = platform.graders.list(None, 1, MAX_PAGE_SIZE)
    return render(request, "evaluations/new.html", status_code=status_code, form=form, models=models,
                  graders=stored.items, graders_total=stored.total, judge_types=JUDGE_TYPES, splits=SPLITS)


@router.get("/evaluations/new", response_class=HTMLResponse)
def evaluation_new(request: Request, model_id: int | None = Query(None, alias="modelId")) -> HTMLResponse:
    return _new_form(request, EvaluationForm(model_id=model_id))


@router.post("/evaluations/new", response_class=HTMLResponse, response_model=None)
def evaluation_create(request: Request, model_id: str = Form("", alias="modelId"), dataset: str = Form(""),
                      split: str = Form("test"), max_samples: str = Form("", alias="maxSamples"),
                      max_new_tokens: str = Form("", alias="maxNewTokens"),
                      compare_with_base: bool = Form(False, alias="compareWithBase"),
                      graders: list[str] = Form([])) -> Response:
    """Start the evaluation and open its page; a refusal keeps the form as typed, each problem named."""
    form = EvaluationForm(int(model_id) if model_id.isdigit() else None, dataset.strip(), split, max_samples,
                          max_new_tokens, compare_with_base, graders)
    body = {"modelId": model_id, "dataset": form.dataset or None, "split": split, "maxSamples": max_samples or 50,
            "maxNewTokens": max_new_tokens or 128, "compareWithBase": compare_with_base, "graders": graders}
    try:
        created = create_evaluation(_service(request), CreateEvaluationBody.model_validate(body))
    except ValidationError as exc:
        form.problems = [{"field": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in exc.errors()]
        return _new_form(request, form, status_code=422)
    except ServiceError as exc:
        form.problems = _named_graders(exc, graders)
        return _new_form(request, form, status_code=exc.status)
    return RedirectResponse(f"{CONSOLE}/evaluations/{created.id}", status_code=303)


def _named_graders(exc: ServiceError, graders: list[str]) -> list[dict[str, str]]:
    """The service's problems; `graders.2` (the third grader picked) says which grader it is."""
    problems = []
    for detail in exc.details or [{"field": "", "message": exc.message}]:
        where, message = str(detail.get("field") or ""), str(detail.get("message") or "")
        parts = where.split(".")
        if len(parts) >= 2 and parts[0] == "graders" and parts[1].isdigit() and int(parts[1]) < len(graders):
            message = f"{graders[int(parts[1])]}: {message}"
        problems.append({"field": where, "message": message})
    return problems
