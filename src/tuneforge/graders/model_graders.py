"""score_model and label_model: render the grader's messages, ask the judge, read its reply.

The judge is told how to answer (a JSON object `{"result": ...}`, what OpenAI's graders ask for with structured
outputs), but replies are read leniently because local models drift: a JSON object with `result` (or `score`),
anywhere in the reply, else a bare number or label. A score outside the grader's range is clamped into it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from tuneforge.graders.interface import GradeResult, JudgeClient
from tuneforge.graders.templates import render
from tuneforge.schemas.graders import LabelModelGrader, ScoreModelGrader

REPLY_KEPT = 2000  # characters of the judge's reply kept in details
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_JSON_OBJECT = re.compile(r"\{[^{}]*\}")
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")


def judge_messages(grader: ScoreModelGrader | LabelModelGrader, sample: Mapping[str, Any],
                   item: Mapping[str, Any], missing: list[str]) -> list[dict[str, str]]:
    """The rendered messages with the answer format added to the first system message (or a new one in front)."""
    messages = [{"role": m.role, "content": render(m.content, sample, item, missing)} for m in grader.input]
    instruction = _answer_format(grader)
    for message in messages:
        if message["role"] in ("system", "developer"):
            message["content"] = f"{message['content']}\n\n{instruction}"
            return messages
    return [{"role": "system", "content": instruction}, *messages]


def sampling_request(grader: ScoreModelGrader | LabelModelGrader) -> dict[str, Any]:
    """sampling_params in chat-completions request names (OpenAI's grader spells it max_completions_tokens)."""
    params = grader.sampling_params if isinstance(grader, ScoreModelGrader) else None
    if params is None:
        return {}
    request = {"temperature": params.temperature, "top_p": params.top_p, "seed": params.seed,
               "max_tokens": params.max_completions_tokens}
    return {key: value for key, value in request.items() if value is not None}


def grade_with_judge(grader: ScoreModelGrader | LabelModelGrader, sample: Mapping[str, Any],
                     item: Mapping[str, Any], judge: JudgeClient | None) -> GradeResult:
    missing: list[str] = []
    messages = judge_messages(grader, sample, item, missing)
    details: dict[str, Any] = {"missing_references": missing} if missing else {}
    if judge is None:
        return GradeResult(0.0, reason=f"no judge model available to run {grader.type} grader {grader.name!r} "
                                       f"(model {grader.model!r})", details=details)
    try:
        reply = judge.complete(grader.model, messages, sampling_request(grader))
    except Exception as exc:  # any failure of the judge is this sample's reason, never a crash
        return GradeResult(0.0, reason=f"judge failed: {exc}", details=details)
    details["judge_reply"] = reply[:REPLY_KEPT]
    if isinstance(grader, ScoreModelGrader):
        return _score(grader, reply, details)
    return _label(grader, reply, details)


def _score(grader: ScoreModelGrader, reply: str, details: dict[str, Any]) -> GradeResult:
    value = parse_score(reply)
    if value is None:
        return GradeResult(0.0, reason="bad judge output: no score in the reply", details=details)
    low, high = grader.score_range
    score = min(max(value, low), high)
    if score != value:
        details["unclamped_score"] = value
    if grader.pass_threshold is not None:
        details["passed"] = score >= grader.pass_threshold
    return GradeResult(score, details=details)


def _label(grader: LabelModelGrader, reply: str, details: dict[str, Any]) -> GradeResult:
    label = parse_label(reply, grader.labels)
    if label is None:
        return GradeResult(0.0, reason=f"bad judge output: the reply is none of the labels {grader.labels}",
                           details=details)
    details["label"] = label
    return GradeResult(1.0 if label in grader.passing_labels else 0.0, details=details)


def parse_score(reply: str) -> float | None:
    """The judge's number: `result` (or `score`) of a JSON object in the reply, else the reply's last number."""
    result = _json_result(reply)
    candidates = [result] if result is not None else _NUMBER.findall(reply)[-1:]
    for candidate in candidates:
        try:
            value = float(candidate)
        except (TypeError, ValueError):
            return None
        return value if math.isfinite(value) else None
    return None


def parse_label(reply: str, labels: list[str]) -> str | None:
    """The label the judge chose: `result` of a JSON object in the reply, else the whole reply; exact match first,
    then ignoring case, quotes and a final full stop."""
    result = _json_result(reply)
    text = str(result) if result is not None else reply
    if text in labels:
        return text
    cleaned = text.strip().strip("\"'`").rstrip(".").strip().casefold()
    return next((label for label in labels if label.casefold() == cleaned), None)


def _json_result(reply: str) -> Any:
    text = _FENCE.sub("", reply.strip())
    for candidate in [text, *reversed(_JSON_OBJECT.findall(text))]:
        try:
            parsed = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(parsed, dict):
            for key in ("result", "score", "label"):
                if key in parsed and not isinstance(parsed[key], dict | list | bool):
                    return parsed[key]
        elif isinstance(parsed, int | float) and not isinstance(parsed, bool):
            return parsed
    return None


def _answer_format(grader: ScoreModelGrader | LabelModelGrader) -> str:
    if isinstance(grader, ScoreModelGrader):
        low, high = grader.score_range
        return f'Answer with only a JSON object {{"result": <a number from {low:g} to {high:g}>}}.'
    labels = ", ".join(grader.labels)
    return f'Answer with only a JSON object {{"result": "<label>"}}, where <label> is one of: {labels}.'
