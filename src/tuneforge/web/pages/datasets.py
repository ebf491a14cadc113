"""Datasets pages: the list, the create form and a dataset's page (versions, validation report by line, statistics
with a length histogram, preview through a template). They read through the dataset service; uploads, new versions
and deletion go to the JSON API from static/datasets.js, exactly as any other client does."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from tuneforge.data.formats import DEFAULT_COLUMNS, FORMATTINGS, PURPOSES, SHAREGPT_TAGS
from tuneforge.data.templates import TEMPLATE_NAMES
from tuneforge.service.errors import MAX_PAGE, NotFound, ServiceError
from tuneforge.web.rendering import CONSOLE, render

router = APIRouter(prefix=CONSOLE)
PAGE_SIZE = 20
# While a version validates, its page and the list refresh this often (the bar: an update at least every 2 s).
REFRESH_S = 2
# Preview defaults: a few records, the bundled model's tokenizer (any model folder or hub id works as well).
PREVIEW_DEFAULTS = {"template": "default", "model": "bundled", "n": 3, "cutoff_len": 1024, "train_on_prompt": False}
# LLaMA-Factory's dataset_info.json `columns` each format reads, with the field name used when left empty.
MAPPING_COLUMNS: dict[str, dict[str, str]] = {
    "alpaca": DEFAULT_COLUMNS["alpaca"],
    "sharegpt": DEFAULT_COLUMNS["sharegpt"],
    "openai": {"messages": "messages", "system": "system", "tools": "tools"},
    "text": DEFAULT_COLUMNS["text"],
}
# Columns only some purposes read: the two answers of a preference pair, the label of a KTO sample.
PURPOSE_COLUMNS: dict[str, dict[str, str]] = {
    "preference": {"chosen": "chosen", "rejected": "rejected"},
    "kto": {"kto_tag": "kto_tag"},
}


def _service(request: Request) -> Any:
    return request.app.state.platform.datasets


def _not_found(request: Request, dataset_id: int) -> HTMLResponse:
    return render(request, "error.html", status_code=404, message_key="datasets.not_found",
                  message_values={"id": dataset_id})


# -- list ------------------------------------------------------------------------------------------------------
def _listing(request: Request, q: str | None, page: int) -> dict[str, Any]:
    query = (q or "").strip()
    page = min(max(1, page), MAX_PAGE)
    result = _service(request).list(None, query or None, page, PAGE_SIZE)
    pages = max(1, -(-result["total"] // PAGE_SIZE))
    any_validating = any(item["status"] == "validating" for item in result["items"])
    return {"items": result["items"], "total": result["total"], "pages": pages, "q": query, "page": page,
            "any_validating": any_validating, "refresh_s": REFRESH_S}


@router.get("/datasets", response_class=HTMLResponse)
def dataset_list(request: Request, q: str | None = None, page: int = 1) -> HTMLResponse:
    return render(request, "datasets/list.html", **_listing(request, q, page))


@router.get("/datasets/rows", response_class=HTMLResponse)
def dataset_rows(request: Request, q: str | None = None, page: int = 1) -> HTMLResponse:
    """The list's table alone: what the list swaps in every REFRESH_S seconds while a version validates."""
    return render(request, "datasets/_rows.html", **_listing(request, q, page))


# -- create ----------------------------------------------------------------------------------------------------
@router.get("/datasets/new", response_class=HTMLResponse)
def dataset_new(request: Request) -> HTMLResponse:
    return render(request, "datasets/new.html", formattings=FORMATTINGS, purposes=PURPOSES,
                  mapping_columns=MAPPING_COLUMNS, purpose_columns=PURPOSE_COLUMNS, sharegpt_tags=SHAREGPT_TAGS)


# -- one dataset -----------------------------------------------------------------------------------------------
def version_context(request: Request, dataset_id: int, version: int | None) -> dict[str, Any]:
    """The dataset, the chosen version's view (report and stored statistics included) and the preview defaults.

    Raises NotFound for an unknown dataset or version."""
    service = _service(request)
    dataset = service.get(dataset_id)
    _, _, view = service.version(dataset_id, version)
    report = view.get("report") or {}
    listed = len(report.get("problems") or [])
    return {"dataset": dataset, "selected": view, "report": report, "unlisted": view["problemCount"] - listed,
            "stats": view.get("stats"), "validating": view["status"] == "validating", "refresh_s": REFRESH_S,
            "templates": TEMPLATE_NAMES, "preview": PREVIEW_DEFAULTS}


@router.get("/datasets/{dataset_id:int}", response_class=HTMLResponse)
def dataset_detail(request: Request, dataset_id: int, version: int | None = None) -> HTMLResponse:
    try:
        context = version_context(request, dataset_id, version)
    except NotFound:
        return _not_found(request, dataset_id)
    return render(request, "datasets/detail.html", **context)


@router.get("/datasets/{dataset_id:int}/version", response_class=HTMLResponse)
def dataset_version(request: Request, dataset_id: int, version: int | None = None) -> HTMLResponse:
    """The versions table and the chosen version's report, statistics and preview form: swapped in every
    REFRESH_S seconds while the version validates; the copy rendered once it has finished stops the polling."""
    try:
        context = version_context(request, dataset_id, version)
    except NotFound:
        return _not_found(request, dataset_id)
    return render(request, "datasets/_version.html", **context)


@router.get("/datasets/{dataset_id:int}/stats", response_class=HTMLResponse)
def dataset_stats(request: Request, dataset_id: int, version: int | None = None, model: str | None = None,
                  cutoff_len: str | None = Query(None, alias="cutoffLen")) -> HTMLResponse:
    """Statistics counted again with a chosen model's tokenizer and cutoff_len (empty: the stored ones)."""
    model = (model or "").strip() or None
    cutoff, error = _positive_int(cutoff_len, "cutoffLen")
    stats: dict[str, Any] | None = None
    if error is None:
        try:
            stats = _service(request).statistics(dataset_id, version, model, cutoff)
        except ServiceError as exc:
            error = _first_problem(exc)
    return render(request, "datasets/_stats.html", stats=stats, error=error, model=model or "",
                  cutoff_len=cutoff_len or "")


@router.get("/datasets/{dataset_id:int}/preview", response_class=HTMLResponse)
def dataset_preview(request: Request, dataset_id: int, version: int | None = None,
                    template: str = PREVIEW_DEFAULTS["template"], model: str = PREVIEW_DEFAULTS["model"],
                    n: str = str(PREVIEW_DEFAULTS["n"]),
                    cutoff_len: str = Query(str(PREVIEW_DEFAULTS["cutoff_len"]), alias="cutoffLen"),
                    train_on_prompt: bool = Query(False, alias="trainOnPrompt")) -> HTMLResponse:
    """The first records rendered through a template: trained tokens highlighted, masked ones dimmed."""
    count, error = _positive_int(n, "n", maximum=50)
    cutoff, cutoff_error = _positive_int(cutoff_len, "cutoffLen")
    error = error or cutoff_error
    preview: dict[str, Any] | None = None
    if error is None:
        try:
            preview = _service(request).preview(
                dataset_id, version, template=template, model=model.strip() or PREVIEW_DEFAULTS["model"],
                n=count or PREVIEW_DEFAULTS["n"], cutoff_len=cutoff or PREVIEW_DEFAULTS["cutoff_len"],
                train_on_prompt=train_on_prompt, mask_history=False, tokens=False)
        except ServiceError as exc:
            error = _first_problem(exc)
    return render(request, "datasets/_preview.html", preview=preview, error=error)


def _positive_int(text: str | None, field: str, maximum: int | None = None) -> tuple[int | None, dict | None]:
    """A form number: None when left empty, else an int in 1..maximum, or an error naming the field."""
    if text is None or not str(text).strip():
        return None, None
    value = str(text).strip()
    if not value.isdigit() or int(value) < 1 or (maximum is not None and int(value) > maximum):
        if maximum is None:
            return None, {"field": field, "key": "datasets.error_positive_int", "values": {}}
        return None, {"field": field, "key": "datasets.error_int_range", "values": {"max": maximum}}
    return int(value), None


def _first_problem(exc: ServiceError) -> dict[str, Any]:
    """The service's refusal as the fragment shows it: the field it names and its message (in English: it comes
    from the service, like the API's)."""
    detail = exc.details[0] if exc.details else {}
    return {"field": detail.get("field", ""), "message": detail.get("message") or exc.message}
