"""OpenAI's grader templates: `{{ namespace.path }}` replaced by a value of the sample or the dataset item.

`{{sample.output_text}}`, `{{sample.output_json.answer}}`, `{{item.reference_answer}}`, `{{item.a.b}}`,
`{{item.choices.0}}` or `{{item.choices[0]}}`. A string value is inserted as is, anything else as compact JSON.
A reference that does not resolve renders as the empty string and is reported, so a typo shows up in the
result's details instead of crashing a whole evaluation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

NAMESPACES = ("sample", "item")
SAMPLE_FIELDS = ("output_text", "output_json")  # what a sample holds here (OpenAI also has output_tools, choices…)
_REFERENCE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_INDEX = re.compile(r"\[(\d+)\]")


def make_sample(output_text: str) -> dict[str, Any]:
    """The sample of a model's answer: its text, and the text parsed as JSON when it is JSON (else None)."""
    return {"output_text": output_text, "output_json": parse_json_or_none(output_text)}


def normalize_sample(sample: Mapping[str, Any]) -> dict[str, Any]:
    """`sample` with `output_text` a string and `output_json` filled in from it when the caller left it out."""
    normalized = dict(sample)
    text = normalized.get("output_text")
    normalized["output_text"] = "" if text is None else str(text)
    if "output_json" not in normalized:
        normalized["output_json"] = parse_json_or_none(normalized["output_text"])
    return normalized


def parse_json_or_none(text: str) -> Any:
    stripped = text.strip()
    if not stripped or stripped[0] not in "{[":  # OpenAI's output_json is an object; a bare number is text
        return None
    try:
        return json.loads(stripped)
    except ValueError:
        return None


def references(template: str) -> list[str]:
    """The `namespace.path` strings a template refers to, in order."""
    return [match.group(1) for match in _REFERENCE.finditer(template)]


def reference_problem(reference: str) -> str | None:
    """Why `reference` can never resolve (wrong namespace, a sample field we do not have), or None."""
    parts = split_reference(reference)
    if not parts or parts[0] not in NAMESPACES:
        return f"{{{{{reference}}}}}: a template names 'sample.…' or 'item.…'"
    if parts[0] == "sample" and len(parts) > 1 and parts[1] not in SAMPLE_FIELDS:
        return (f"{{{{{reference}}}}}: a sample here has only {', '.join(SAMPLE_FIELDS)} "
                f"(the model's answer as text, and as JSON when it is JSON)")
    return None


def render(template: str, sample: Mapping[str, Any], item: Mapping[str, Any], missing: list[str]) -> str:
    """`template` with each reference replaced; references that do not resolve are appended to `missing`."""
    scope = {"sample": sample, "item": item}

    def substitute(match: re.Match[str]) -> str:
        found, value = _resolve(scope, split_reference(match.group(1)))
        if not found:
            missing.append(match.group(1))
            return ""
        return _as_text(value)

    return _REFERENCE.sub(substitute, template)


def split_reference(reference: str) -> list[str]:
    return [part for part in _INDEX.sub(r".\1", reference).split(".") if part != ""]


def _resolve(scope: Mapping[str, Any], parts: Sequence[str]) -> tuple[bool, Any]:
    value: Any = scope
    for part in parts:
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return False, None
    return bool(parts), value


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
