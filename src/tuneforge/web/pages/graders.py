"""Grader pages: the list (filter by type), the create form (the type chosen from a select fills the JSON editor
with an example of that type; Validate shows every problem naming its field) and a grader's page, where it can be
tried on JSONL samples: a table of each score with its reason, and the mean.

Server-rendered: the forms post to these pages, which call the same GraderService the JSON API calls, so the console
answers exactly as /graders/createGrader, validateGrader and runGrader do. Fragments swap in through htmx."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from tuneforge.schemas.graders import GRADER_TYPES
from tuneforge.service.errors import MAX_PAGE, ServiceError
from tuneforge.web.rendering import CONSOLE, render

router = APIRouter(prefix=CONSOLE)
PAGE_SIZE = 20
MAX_FORM_CHARS = 2 * 1024 * 1024  # a grader object or a box of samples typed into the console

EXAMPLES: dict[str, dict[str, Any]] = {
    "string_check": {"type": "string_check", "name": "exact answer", "input": "{{sample.output_text}}",
                     "reference": "{{item.answer}}", "operation": "eq"},
    "text_similarity": {"type": "text_similarity", "name": "close to the answer", "input": "{{sample.output_text}}",
                        "reference": "{{item.answer}}", "evaluation_metric": "fuzzy_match"},
    "python": {"type": "python", "name": "answer found",
               "source": "def grade(sample, item):\n    answer = item[\"answer\"].lower()\n"
                         "    return 1.0 if answer in sample[\"output_text\"].lower() else 0.0\n"},
    "score_model": {"type": "score_model", "name": "judge", "model": "my-judge-deployment", "range": [0, 1],
                    "input": [{"role": "system", "content": "Score how well the answer matches the reference, from "
                                                            "0 to 1. Reply with the number only."},
                              {"role": "user", "content": "Reference: {{item.answer}}\nAnswer: "
                                                          "{{sample.output_text}}"}]},
    "label_model": {"type": "label_model", "name": "correct or not", "model": "my-judge-deployment",
                    "labels": ["correct", "incorrect"], "passing_labels": ["correct"],
                    "input": [{"role": "user", "content": "Reference: {{item.answer}}\nAnswer: {{sample.output_text}}"
                                                          "\nIs the answer correct? Reply correct or incorrect."}]},
    "multi": {"type": "multi", "name": "exact or close", "calculate_output": "max(exact, close)",
              "graders": {"exact": {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}",
                                    "reference": "{{item.answer}}", "operation": "eq"},
                          "close": {"type": "text_similarity", "name": "close", "input": "{{sample.output_text}}",
                                    "reference": "{{item.answer}}", "evaluation_metric": "fuzzy_match"}}},
}
EXAMPLE_SAMPLES = "\n".join(json.dumps(line, ensure_ascii=False) for line in (
    {"sample": {"output_text": "Paris"}, "item": {"answer": "Paris"}},
    {"sample": {"output_text": "The capital is Paris."}, "item": {"answer": "Paris"}},
    {"sample": {"output_text": "London"}, "item": {"answer": "Paris"}},
))


def _graders(request: Request) -> Any:
    return request.app.state.platform.graders


def example_text(kind: str) -> str:
    return json.dumps(EXAMPLES.get(kind, EXAMPLES["string_check"]), indent=2, ensure_ascii=False)


def _problems(exc: ServiceError) -> list[dict[str, str]]:
    return [{"field": str(d.get("field") or ""), "message": str(d.get("message") or "")} for d in exc.details] or \
        [{"field": "", "message": exc.message}]


def parse_grader_text(text: str) -> tuple[Any, list[dict[str, str]]]:
    """The grader object typed into the editor, or the problem naming where the JSON breaks."""
    if len(text) > MAX_FORM_CHARS:
        return None, [{"field": "grader", "message": f"is longer than {MAX_FORM_CHARS} characters"}]
    try:
        return json.loads(text), []
    except ValueError as exc:
        return None, [{"field": "grader", "message": f"not valid JSON: {exc}"}]


def parse_samples_text(text: str) -> tuple[list[Any], list[int], list[dict[str, str]]]:
    """(samples, their line numbers, problems naming `line N`) from a box of JSONL."""
    if len(text) > MAX_FORM_CHARS:
        return [], [], [{"field": "samples", "message": f"are longer than {MAX_FORM_CHARS} characters"}]
    samples, lines, problems = [], [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            samples.append(json.loads(line))
            lines.append(number)
        except ValueError as exc:
            problems.append({"field": f"line {number}", "message": f"not valid JSON: {exc}"})
    if not samples and not problems:
        problems.append({"field": "samples", "message": "give at least one line: {\"sample\": {\"output_text\": "
                                                         "…}, \"item\": {…}}"})
    return samples, lines, problems


def _at_lines(problems: list[dict[str, str]], lines: list[int]) -> list[dict[str, str]]:
    """`samples.3.item` → `line 5 item`: where the user typed it."""
    located = []
    for problem in problems:
        parts = problem["field"].split(".")
        if len(parts) >= 2 and parts[0] == "samples" and parts[1].isdigit() and int(parts[1]) < len(lines):
            rest = ".".join(parts[2:])
            problem = problem | {"field": f"line {lines[int(parts[1])]}" + (f" {rest}" if rest else "")}
        located.append(problem)
    return located


# -- list ------------------------------------------------------------------------------------------------------
@router.get("/graders", response_class=HTMLResponse)
def grader_list(request: Request, type: str | None = None, page: int = 1) -> HTMLResponse:
    kind = type if type in GRADER_TYPES else ""
    page = min(max(1, page), MAX_PAGE)
    result = _graders(request).list(kind or None, page, PAGE_SIZE)
    pages = max(1, -(-result.total // PAGE_SIZE))
    return render(request, "graders/list.html", items=result.items, total=result.total, page=page, pages=pages,
                  kind=kind, types=GRADER_TYPES)


# -- create ----------------------------------------------------------------------------------------------------
def _new_form(request: Request, kind: str, name: str = "", description: str = "", grader_text: str | None = None,
              problems: list[dict[str, str]] | None = None, status_code: int = 200) -> HTMLResponse:
    kind = kind if kind in GRADER_TYPES else "string_check"
    return render(request, "graders/new.html", status_code=status_code, types=GRADER_TYPES, kind=kind, name=name,
                  description=description, grader_text=example_text(kind) if grader_text is None else grader_text,
                  problems=problems or [])


@router.get("/graders/new", response_class=HTMLResponse)
def grader_new(request: Request, type: str = "string_check") -> HTMLResponse:
    return _new_form(request, type)


@router.get("/graders/example", response_class=HTMLResponse)
def grader_example(request: Request, type: str = "string_check") -> HTMLResponse:
    """The JSON editor, filled with an example of the chosen type (swapped in when the type changes)."""
    kind = type if type in GRADER_TYPES else "string_check"
    return render(request, "graders/_editor.html", grader_text=example_text(kind))


@router.post("/graders/validate", response_class=HTMLResponse)
def grader_validate(request: Request, grader: str = Form("")) -> HTMLResponse:
    """Every problem of the typed grader, naming its field, or that it is valid (a fragment)."""
    parsed, problems = parse_grader_text(grader)
    kind = None
    if not problems:
        verdict = _graders(request).validate(parsed)
        problems, kind = [p.model_dump() for p in verdict.problems], verdict.type
    return render(request, "graders/_problems.html", problems=problems, valid=not problems, kind=kind)


@router.post("/graders", response_class=HTMLResponse, response_model=None)
def grader_create(request: Request, name: str = Form(""), description: str = Form(""), type: str = Form(""),
                  grader: str = Form("")) -> Response:
    parsed, problems = parse_grader_text(grader)
    if problems:
        return _new_form(request, type, name, description, grader, problems, status_code=422)
    try:
        created = _graders(request).create(name.strip(), parsed, description)
    except ServiceError as exc:
        return _new_form(request, type, name, description, grader, _problems(exc), status_code=exc.status)
    return RedirectResponse(f"{CONSOLE}/graders/{created.id}", status_code=303)


# -- one grader ------------------------------------------------------------------------------------------------
@router.get("/graders/{grader_id:int}", response_class=HTMLResponse)
def grader_detail(request: Request, grader_id: int) -> HTMLResponse:
    try:
        grader = _graders(request).get(grader_id)
    except ServiceError:
        return render(request, "error.html", status_code=404, message_key="graders.not_found",
                      message_values={"id": grader_id})
    return render(request, "graders/detail.html", grader=grader,
                  grader_json=json.dumps(grader.grader, indent=2, ensure_ascii=False), samples_text=EXAMPLE_SAMPLES)


@router.post("/graders/{grader_id:int}/run", response_class=HTMLResponse)
def grader_run(request: Request, grader_id: int, samples: str = Form("")) -> HTMLResponse:
    """The grader on the typed samples: a table of each score and reason, and the mean (a fragment)."""
    parsed, lines, problems = parse_samples_text(samples)
    if problems:
        return render(request, "graders/_run.html", run=None, lines=lines, problems=problems)
    try:
        run = _graders(request).run(grader_id, parsed)
    except ServiceError as exc:
        return render(request, "graders/_run.html", run=None, lines=lines, problems=_at_lines(_problems(exc), lines))
    rows = [{"line": lines[r.index], "output": _output_text(parsed[r.index]), "score": r.score, "reason": r.reason}
            for r in run.results]
    return render(request, "graders/_run.html", run=run, rows=rows, lines=lines, problems=[])


@router.post("/graders/{grader_id:int}/delete", response_model=None)
def grader_delete(request: Request, grader_id: int) -> Response:
    """Delete, then go back to the list (htmx follows HX-Redirect; a plain form post follows the 303)."""
    with contextlib.suppress(ServiceError):  # already gone: the list shows that
        _graders(request).delete(grader_id)
    target = f"{CONSOLE}/graders"
    if request.headers.get("HX-Request"):
        return Response(status_code=200, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def _output_text(entry: Any) -> str:
    sample = entry.get("sample") if isinstance(entry, dict) else None
    text = sample.get("output_text") if isinstance(sample, dict) else None
    return text if isinstance(text, str) else ""
