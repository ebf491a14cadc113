"""grade_samples: one grader over a batch of (sample, item) pairs, whatever its type."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from tuneforge.graders import text_similarity
from tuneforge.graders.formula import FormulaError, parse_formula
from tuneforge.graders.interface import GradeResult, JudgeClient, SandboxLimits
from tuneforge.graders.model_graders import grade_with_judge
from tuneforge.graders.sandbox import run_python_grader
from tuneforge.graders.templates import normalize_sample, render
from tuneforge.schemas.graders import (
    Grader,
    LabelModelGrader,
    MultiGrader,
    PythonGrader,
    ScoreModelGrader,
    StringCheckGrader,
    TextSimilarityGrader,
)


def grade_samples(grader: Grader, samples: Sequence[Mapping[str, Any]], items: Sequence[Mapping[str, Any]], *,
                  judge: JudgeClient | None = None, limits: SandboxLimits | None = None) -> list[GradeResult]:
    """One GradeResult per sample, in order. `samples[i]` is the model's answer
    (`{"output_text": ..., "output_json": ...}`; output_json is filled in from the text when left out) and
    `items[i]` its dataset row. A failure scores that sample 0 with a reason; it never raises for a sample."""
    if len(samples) != len(items):
        raise ValueError(f"grade_samples needs one item per sample, got {len(samples)} samples and {len(items)} items")
    normalized = [normalize_sample(sample) for sample in samples]
    rows = [dict(item) for item in items]
    return _grade(grader, normalized, rows, judge, limits or SandboxLimits())


def _grade(grader: Grader, samples: list[dict[str, Any]], items: list[dict[str, Any]], judge: JudgeClient | None,
           limits: SandboxLimits) -> list[GradeResult]:
    if isinstance(grader, StringCheckGrader):
        return [_string_check(grader, sample, item) for sample, item in zip(samples, items, strict=True)]
    if isinstance(grader, TextSimilarityGrader):
        return [_text_similarity(grader, sample, item) for sample, item in zip(samples, items, strict=True)]
    if isinstance(grader, PythonGrader):
        return _python(grader, samples, items, limits)
    if isinstance(grader, ScoreModelGrader | LabelModelGrader):
        return [grade_with_judge(grader, sample, item, judge) for sample, item in zip(samples, items, strict=True)]
    return _multi(grader, samples, items, judge, limits)


def _string_check(grader: StringCheckGrader, sample: Mapping[str, Any], item: Mapping[str, Any]) -> GradeResult:
    missing: list[str] = []
    text, reference = render(grader.input, sample, item, missing), render(grader.reference, sample, item, missing)
    if grader.operation == "eq":
        passed = text == reference
    elif grader.operation == "ne":
        passed = text != reference
    elif grader.operation == "like":  # OpenAI: "input contains reference", case-sensitive
        passed = reference in text
    else:
        passed = reference.casefold() in text.casefold()
    return GradeResult(1.0 if passed else 0.0, details=_missing(missing))


def _text_similarity(grader: TextSimilarityGrader, sample: Mapping[str, Any],
                     item: Mapping[str, Any]) -> GradeResult:
    missing: list[str] = []
    text, reference = render(grader.input, sample, item, missing), render(grader.reference, sample, item, missing)
    details = _missing(missing)
    metric = text_similarity.METRICS.get(grader.evaluation_metric)
    if metric is None:
        why = text_similarity.UNAVAILABLE_METRICS.get(grader.evaluation_metric, "is not implemented")
        return GradeResult(0.0, reason=f"evaluation_metric {grader.evaluation_metric!r} {why}", details=details)
    score = min(max(metric(text, reference), 0.0), 1.0)
    if grader.pass_threshold is not None:
        details["passed"] = score >= grader.pass_threshold
    return GradeResult(score, details=details)


def _python(grader: PythonGrader, samples: list[dict[str, Any]], items: list[dict[str, Any]],
            limits: SandboxLimits) -> list[GradeResult]:
    if grader.image_tag:
        reason = f"image_tag {grader.image_tag!r} cannot run here: python graders run in a local sandbox"
        return [GradeResult(0.0, reason=reason) for _ in samples]
    results = run_python_grader(grader.source, samples, items, limits)
    if grader.pass_threshold is None:
        return results
    return [GradeResult(r.score, r.reason, {**r.details, "passed": r.score >= grader.pass_threshold})
            if r.reason is None else r for r in results]


def _multi(grader: MultiGrader, samples: list[dict[str, Any]], items: list[dict[str, Any]],
           judge: JudgeClient | None, limits: SandboxLimits) -> list[GradeResult]:
    try:
        formula = parse_formula(grader.calculate_output, grader.graders)
    except FormulaError as exc:
        return [GradeResult(0.0, reason=f"calculate_output: {exc}") for _ in samples]
    # each sub-grader sees the whole batch, so a python sub-grader starts one sandbox, not one per sample
    columns = {name: _grade(sub, samples, items, judge, limits) for name, sub in grader.graders.items()}
    results = []
    for index in range(len(samples)):
        scores = {name: column[index].score for name, column in columns.items()}
        details: dict[str, Any] = {"scores": scores}
        errors = {name: column[index].reason for name, column in columns.items() if column[index].reason}
        if errors:  # a failed sub-grader counts 0 in the formula; the reason stays visible here
            details["errors"] = errors
        try:
            score = formula.evaluate(scores)
        except FormulaError as exc:
            results.append(GradeResult(0.0, reason=str(exc), details=details))
            continue
        results.append(GradeResult(score if math.isfinite(score) else 0.0, details=details))
    return results


def _missing(missing: list[str]) -> dict[str, Any]:
    return {"missing_references": missing} if missing else {}
