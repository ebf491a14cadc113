"""Turning user input (YAML / JSON files, API bodies, CLI overrides) into a TrainingConfig.

Every problem is collected and raised as one ConfigError naming each field; a raw pydantic
traceback never reaches a user.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tuneforge.schemas.catalog import COMPUTE_TYPES, UNSUPPORTED_LF_KEY_PREFIXES
from tuneforge.schemas.config_errors import ConfigError, ConfigProblem
from tuneforge.schemas.llamafactory_keys import NOT_SUPPORTED
from tuneforge.schemas.training import (
    ALIASES,
    COMPUTE_TYPE_KEY,
    NEGATED_ALIASES,
    TrainingConfig,
    cross_field_problems,
)

# PyYAML reads "2e-4" (no dot) as text; users mean a number.
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_PLACEHOLDER_MODEL = "(placeholder)"


def _known_names() -> list[str]:
    return [*TrainingConfig.model_fields, *ALIASES, *NEGATED_ALIASES, COMPUTE_TYPE_KEY]


def _unknown_key(key: str) -> ConfigProblem:
    if key in NOT_SUPPORTED:
        return ConfigProblem(key, f"not supported: '{key}' is a LLaMA-Factory option tuneforge does not support "
                                  f"({NOT_SUPPORTED[key]}) — remove it")
    if key.startswith(UNSUPPORTED_LF_KEY_PREFIXES):
        return ConfigProblem(key, f"'{key}' is a LLaMA-Factory option tuneforge does not support yet — remove it")
    close = difflib.get_close_matches(key, _known_names(), n=1)
    hint = f" — did you mean '{close[0]}'?" if close else " — see docs/parameters.md for the accepted keys"
    return ConfigProblem(key, f"unknown key '{key}'{hint}")


def _resolve_keys(raw: Mapping[Any, Any]) -> tuple[dict[str, Any], dict[str, str], list[ConfigProblem]]:
    """Map aliases to field names. Returns (values by field, field -> key as given, problems)."""
    values: dict[str, Any] = {}
    given_as: dict[str, str] = {}
    problems: list[ConfigProblem] = []
    for key, value in raw.items():
        if not isinstance(key, str):
            problems.append(ConfigProblem(str(key), "keys must be text (parameter names)"))
            continue
        if key == COMPUTE_TYPE_KEY:
            continue
        if key in NEGATED_ALIASES:
            key, value = NEGATED_ALIASES[key], _negated(value)
        field = ALIASES.get(key, key)
        if field not in TrainingConfig.model_fields:
            problems.append(_unknown_key(key))
        elif field in given_as:
            problems.append(ConfigProblem(field, f"given twice: as '{given_as[field]}' and '{key}' — keep one"))
        else:
            values[field] = value
            given_as[field] = key
    if COMPUTE_TYPE_KEY in raw:
        problems += _apply_compute_type(raw[COMPUTE_TYPE_KEY], values, given_as)
    return values, given_as, problems


def _negated(value: Any) -> Any:
    """`disable_gradient_checkpointing: true` means gradient_checkpointing: false; other values fail as bools do."""
    return (not value) if isinstance(value, bool) else value


def _apply_compute_type(value: Any, values: dict[str, Any], given_as: dict[str, str]) -> list[ConfigProblem]:
    name = str(value).strip().lower() if value is not None else "fp32"
    if name not in COMPUTE_TYPES:
        return [ConfigProblem(COMPUTE_TYPE_KEY, f"must be one of {', '.join(COMPUTE_TYPES)}, got {value!r}")]
    wanted = dict(zip(("bf16", "fp16"), COMPUTE_TYPES[name], strict=True))
    problems = []
    for flag, on in wanted.items():
        if flag in values and bool(values[flag]) != on:
            problems.append(ConfigProblem(f"{COMPUTE_TYPE_KEY}, {flag}",
                                          f"compute_type {name} contradicts {flag}: {values[flag]} — keep one"))
        elif flag not in values:
            values[flag] = on
            given_as[flag] = COMPUTE_TYPE_KEY
    return problems


def _shown(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, str) else json.dumps(value, default=str)


def _message(error: Mapping[str, Any]) -> str:
    kind, ctx, got = error["type"], error.get("ctx") or {}, _shown(error.get("input"))
    bounds = {"greater_than_equal": ("≥", "ge"), "greater_than": (">", "gt"),
              "less_than_equal": ("≤", "le"), "less_than": ("<", "lt")}
    if kind in bounds:
        sign, key = bounds[kind]
        return f"must be {sign} {_shown(ctx[key])}, got {got}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    plain = {
        "missing": "is required",
        "literal_error": f"must be one of {ctx.get('expected')}, got {got}",
        "int_parsing": f"must be a whole number, got {got}",
        "int_type": f"must be a whole number, got {got}",
        "int_from_float": f"must be a whole number, got {got}",
        "int_parsing_size": "must be a whole number of at most 2,147,483,647",
        "finite_number": f"must be a finite number, got {got}",
        "float_parsing": f"must be a number, got {got}",
        "float_type": f"must be a number, got {got}",
        "bool_parsing": f"must be true or false, got {got}",
        "bool_type": f"must be true or false, got {got}",
        "string_type": f"must be text, got {got}",
        "string_too_short": "must not be empty",
        "list_type": f"must be a list or a comma-separated string, got {got}",
        "dict_type": f"must be a mapping of key: value, got {got}",
    }
    return plain.get(kind, str(error["msg"]))


def _translate(exc: ValidationError, given_as: Mapping[str, str]) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    seen: set[str] = set()
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        field = str(loc[0]) if loc else "(config)"
        if field in seen:  # union types report once per member; the first says enough
            continue
        seen.add(field)
        label = field
        if given_as.get(field, field) != field:
            label = f"{field} (given as {given_as[field]})"
        message = _message(error)
        if len(loc) > 1 and isinstance(loc[1], int):
            message = f"item {loc[1] + 1}: {message}"
        problems.append(ConfigProblem(label, message))
    return problems


def _partial_cross_problems(values: dict[str, Any], broken: set[str]) -> list[ConfigProblem]:
    """Cross-field rules over the fields that did validate, so one error does not hide the others."""
    kept = {k: v for k, v in values.items() if k not in broken}
    kept.setdefault("model_name_or_path", _PLACEHOLDER_MODEL)
    try:
        partial = TrainingConfig.model_validate(kept, context={"defer_cross_checks": True})
    except ValidationError:
        return []
    return cross_field_problems(partial, skip=frozenset(broken))


def parse_training_config(raw: Mapping[str, Any], *, source: str | None = None) -> TrainingConfig:
    """Validate user input into a TrainingConfig, or raise one ConfigError listing every problem."""
    if not isinstance(raw, Mapping):
        got = type(raw).__name__
        raise ConfigError([ConfigProblem("(config)", f"must be a mapping of key: value, got {got}")], source)
    values, given_as, problems = _resolve_keys(raw)
    try:
        config = TrainingConfig.model_validate(values, context={"defer_cross_checks": True})
    except ValidationError as exc:
        field_problems = _translate(exc, given_as)
        broken = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
        problems += field_problems + _partial_cross_problems(values, broken)
        raise ConfigError(problems, source) from None
    problems += cross_field_problems(config)
    if problems:
        raise ConfigError(problems, source)
    return config


def _scalar(text: str) -> Any:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str) and _NUMBER.match(value.strip()):
        return float(value)
    return value


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """CLI `key=value` overrides -> dict, values typed by YAML rules (`lr=2e-4` -> 0.0002)."""
    overrides: dict[str, Any] = {}
    problems: list[ConfigProblem] = []
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(ConfigProblem(item, "expected key=value, e.g. learning_rate=2e-4"))
            continue
        overrides[key] = _scalar(text.strip())
    if problems:
        raise ConfigError(problems, "the command-line overrides")
    return overrides


def _parse_text(text: str, path: Path) -> Any:
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError([ConfigProblem(f"{path}:{exc.lineno}", f"invalid JSON: {exc.msg}")]) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigProblem(where, f"invalid YAML: {reason}")]) from None


def load_config_file(path: str | Path) -> tuple[dict[str, Any], Path]:
    """Read a YAML or JSON training config. Returns (mapping, absolute path); errors name the file/line."""
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        raise ConfigError([ConfigProblem(str(path), f"config file not found (looked at {resolved})")])
    data = _parse_text(resolved.read_text(encoding="utf-8"), resolved)
    if data is None:
        raise ConfigError([ConfigProblem(str(resolved), "the file is empty — expected key: value lines")])
    if not isinstance(data, dict):
        got = type(data).__name__
        raise ConfigError([ConfigProblem(str(resolved), f"must hold a mapping of key: value, got a {got}")])
    return data, resolved
