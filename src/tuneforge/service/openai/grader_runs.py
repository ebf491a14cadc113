"""OpenAI's alpha grader endpoints on tuneforge's graders (GraderService): run one grader on one model sample and
its item, answered as OpenAI's RunGraderResponse, and validate a grader object.

A grader that fails on the sample scores 0 and says why (GradeResult.reason); OpenAI reports the same as flags in
metadata.errors, so the reason is sorted into them by the grader's type: a python grader's error is a runtime
error, a model grader's judge that cannot answer a server error and a reply without a score a parse error, a
multi grader's formula a formula error, a template naming a field the sample or item lacks an invalid variable."""

from __future__ import annotations

import json
import time
from typing import Any

from tuneforge.schemas import ConfigProblem
from tuneforge.service.errors import InvalidInput
from tuneforge.service.graders.graders import GraderService
from tuneforge.service.openai.errors import InvalidRequest
from tuneforge.service.openai.job_requests import GraderRunRequest, GraderValidateRequest
from tuneforge.service.openai.views import GraderRunErrors, GraderRunMetadata, GraderRunResult, GraderValidated

MODEL_GRADERS = ("score_model", "label_model")
# GraderService.run's fields → this request's
REQUEST_FIELDS = {"samples.0.sample.output_text": "model_sample", "samples.0.sample": "model_sample",
                  "samples.0.item": "item", "samples.0": "model_sample", "samples": "model_sample"}


def run_grader(graders: GraderService, request: GraderRunRequest) -> GraderRunResult:
    sample = {"output_text": request.model_sample, "output_json": _json_or_none(request.model_sample)}
    started = time.monotonic()
    try:
        run = graders.run(request.grader, [{"sample": sample, "item": request.item or {}}])
    except InvalidInput as exc:
        raise InvalidRequest.of([ConfigProblem(REQUEST_FIELDS.get(str(d["field"]), str(d["field"])),
                                               str(d["message"])) for d in exc.details]) from exc
    elapsed = time.monotonic() - started
    result = run.results[0]
    found = result.details.get("scores")
    scores: dict[str, Any] = found if isinstance(found, dict) else {}
    grader = graders.parse(request.grader)
    metadata = GraderRunMetadata(name=grader.name, type=grader.type, errors=_errors(grader.type, result.reason,
                                                                                  result.details),
                                 execution_time=round(elapsed, 6), scores=scores, token_usage=None,
                                 sampled_model_name=getattr(grader, "model", None))
    return GraderRunResult(reward=result.score, metadata=metadata, sub_rewards=scores,
                           model_grader_token_usage_per_model={})


def validate_grader(graders: GraderService, request: GraderValidateRequest) -> GraderValidated:
    """The grader as tuneforge reads it, or a 400 naming each field at fault."""
    found = graders.validate(request.grader)
    if not found.valid:
        raise InvalidRequest.of([ConfigProblem(p.field, p.message) for p in found.problems])
    parsed = graders.parse(request.grader)
    return GraderValidated(grader=parsed.model_dump(mode="json", exclude_unset=True) | {"type": parsed.type})


def _errors(kind: str, reason: str | None, details: dict[str, Any]) -> GraderRunErrors:
    errors = GraderRunErrors(invalid_variable_error=bool(details.get("missing_references")))
    if reason is None:
        return errors
    if kind == "python":
        errors.python_grader_runtime_error, errors.python_grader_runtime_error_details = True, reason
    elif kind in MODEL_GRADERS and reason.startswith("bad judge output"):
        errors.model_grader_parse_error = True
    elif kind in MODEL_GRADERS:
        errors.model_grader_server_error, errors.model_grader_server_error_details = True, reason
    elif kind == "multi" and reason.startswith("calculate_output"):
        errors.formula_parse_error = True
    else:
        errors.other_error = True
    return errors


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None
