"""Bounds on what a grader request may carry, and pydantic's errors as problems that name the request's field.

Every grader object and sample is measured before it is validated or run, so no request can make the server spend
unbounded memory or time: a grader object (a python grader's source included) is at most MAX_GRADER_CHARS of JSON
and nests at most MAX_DEPTH deep; a run takes at most MAX_SAMPLES samples of at most MAX_SAMPLE_CHARS each."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tuneforge.schemas import ConfigProblem

MAX_GRADER_CHARS = 512 * 1024  # OpenAI allows a python grader 256 kB of source; room for the rest of the object
MAX_DEPTH = 16  # multi graders nest graders; score_model inputs nest messages and content parts
MAX_SAMPLES = 100
MAX_SAMPLE_CHARS = 128 * 1024
# Sandboxed python calls and judge-model calls take seconds each (a python grader up to its time limit per sample):
# a run makes at most this many, so a multi grader of many slow sub-graders grades fewer samples per request.
MAX_SLOW_CALLS = 200
SLOW_TYPES = frozenset({"python", "score_model", "label_model"})
SAMPLE_KEYS = frozenset({"sample", "item"})


@dataclass(frozen=True)
class SampleInput:
    """One sample to grade: the model's answer (output_text, output_json) and the dataset row it answers."""

    sample: dict[str, Any]
    item: dict[str, Any]


def depth(value: Any) -> int:
    """How deeply a JSON value nests (a scalar is 0, {} or [] is 1)."""
    stack = [(value, 0)]
    deepest = 0
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level + 1)
            stack += [(v, level + 1) for v in (item.values() if isinstance(item, dict) else item)]
    return deepest


def size_problem(value: Any, limit: int, noun: str) -> str | None:
    """Why a JSON value is too large or too deep to take, or None."""
    if (levels := depth(value)) > MAX_DEPTH:
        return f"nests {levels} levels deep; at most {MAX_DEPTH}"
    try:
        chars = len(json.dumps(value, ensure_ascii=False, allow_nan=False))
    except (TypeError, ValueError):
        return f"is not a JSON {noun} (it holds NaN, infinity or a value JSON cannot write)"
    if chars > limit:
        return f"is {chars} characters of JSON; at most {limit}"
    return None


def has_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str) and "\x00" in item:
            return True
        if isinstance(item, dict):
            stack += [*item.keys(), *item.values()]
        elif isinstance(item, list):
            stack += item
    return False


def grader_object_problems(grader: object, field: str) -> list[ConfigProblem]:
    """What is wrong with a grader object before the schema looks at it: not an object, too large, NUL bytes."""
    if not isinstance(grader, Mapping):
        return [ConfigProblem(field, "must be a grader object, e.g. {\"type\": \"string_check\", …}")]
    if why := size_problem(dict(grader), MAX_GRADER_CHARS, "object"):
        return [ConfigProblem(field, why)]
    if has_nul(dict(grader)):
        return [ConfigProblem(field, "must not contain NUL bytes")]
    return []


def error_problems(errors: Sequence[Mapping[str, Any]], raw: object, field: str) -> list[ConfigProblem]:
    """pydantic's errors for a grader object, each naming the request's field (grader.evaluation_metric,
    grader.graders.exact.operation): the discriminator's tag that pydantic puts in the path is left out."""
    problems = []
    for error in errors:
        path = _field_path(error.get("loc", ()), raw)
        if error.get("type") in ("union_tag_not_found", "union_tag_invalid"):
            path.append("type")
        message = str(error.get("msg", "invalid"))
        if error.get("type") == "extra_forbidden":
            message = "unknown field; check the spelling against the grader's type"
        problems.append(ConfigProblem(".".join([field, *path]), message))
    return _unique(problems)


def _field_path(loc: Sequence[Any], raw: object) -> list[str]:
    path: list[str] = []
    current: Any = raw
    for part in loc:
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, dict) and current.get("type") == part:
            continue  # the union's tag, not a field
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
        else:
            current = None
        path.append(str(part))
    return path


def _unique(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    seen: set[tuple[str, str]] = set()
    kept = []
    for problem in problems:
        if (problem.field, problem.message) not in seen:
            seen.add((problem.field, problem.message))
            kept.append(problem)
    return kept


def sample_inputs(samples: object, field: str = "samples") -> tuple[list[SampleInput], list[ConfigProblem]]:
    """The samples of a run, each {"sample": {"output_text": …, "output_json": …}, "item": {…}}, or every problem
    naming samples.<index>.<key>."""
    if not isinstance(samples, Sequence) or isinstance(samples, str | bytes):
        return [], [ConfigProblem(field, "must be a list of {\"sample\": {\"output_text\": …}, \"item\": {…}}")]
    if not samples:
        return [], [ConfigProblem(field, "is empty: give at least one sample")]
    if len(samples) > MAX_SAMPLES:
        return [], [ConfigProblem(field, f"has {len(samples)} samples; at most {MAX_SAMPLES} per run")]
    inputs, problems = [], []
    for index, entry in enumerate(samples):
        where = f"{field}.{index}"
        if not isinstance(entry, Mapping):
            problems.append(ConfigProblem(where, "must be an object {\"sample\": {…}, \"item\": {…}}"))
            continue
        if unknown := sorted(str(k) for k in entry if k not in SAMPLE_KEYS):
            problems.append(ConfigProblem(f"{where}.{unknown[0]}", "unknown key; a sample has 'sample' and 'item'"))
            continue
        if why := size_problem(dict(entry), MAX_SAMPLE_CHARS, "sample"):
            problems.append(ConfigProblem(where, why))
            continue
        sample, item = entry.get("sample"), entry.get("item", {})
        if not isinstance(sample, Mapping):
            problems.append(ConfigProblem(f"{where}.sample", "is required: an object {\"output_text\": …}"))
        elif not isinstance(sample.get("output_text", ""), str):
            problems.append(ConfigProblem(f"{where}.sample.output_text", "must be text"))
        elif not isinstance(item, Mapping):
            problems.append(ConfigProblem(f"{where}.item", "must be an object: the dataset row the sample answers"))
        else:
            inputs.append(SampleInput({"output_text": "", "output_json": None} | dict(sample), dict(item)))
    return inputs, problems


def slow_graders(grader: Any) -> int:
    """How many python / model graders `grader` (an object or its dict) holds: itself, or a multi grader's
    sub-graders at any depth."""
    def part(name: str) -> Any:
        return grader.get(name) if isinstance(grader, Mapping) else getattr(grader, name, None)

    if part("type") in SLOW_TYPES:
        return 1
    subs = part("graders")
    return sum(slow_graders(sub) for sub in subs.values()) if isinstance(subs, Mapping) else 0


def max_samples_per_run(grader: Any) -> int:
    """The most samples one run of `grader` takes (MAX_SAMPLES, fewer for a grader with many slow sub-graders)."""
    return max(1, min(MAX_SAMPLES, MAX_SLOW_CALLS // max(1, slow_graders(grader))))


def run_size_problem(grader: Any, samples: int, field: str = "samples") -> ConfigProblem | None:
    """Why a run of `grader` over this many samples would take too long, or None."""
    most = max_samples_per_run(grader)
    if samples <= most:
        return None
    return ConfigProblem(field, f"this grader makes {slow_graders(grader)} sandboxed or judge-model calls per "
                                f"sample; a run makes at most {MAX_SLOW_CALLS}: send at most {most} samples per "
                                "request")


def finite(value: Any) -> Any:
    """A JSON-writable copy: NaN and infinities (which JSON cannot carry) become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)
