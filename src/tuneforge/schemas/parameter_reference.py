"""The parameter reference generated from TrainingConfig: what the console form, CLI help and docs show."""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Literal

import annotated_types
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from tuneforge.schemas import catalog
from tuneforge.schemas.training import GROUPS, TrainingConfig, aliases_of

# Fields whose allowed values are a catalog list rather than a Literal type.
_CATALOG_CHOICES: dict[str, tuple[str, ...]] = {
    "template": catalog.TEMPLATES,
    "lr_scheduler_type": catalog.LR_SCHEDULERS,
    "optim": catalog.OPTIMIZERS,
    "report_to": catalog.REPORT_TO,
}

_BOUND_SIGNS = ((annotated_types.Ge, "ge", "≥"), (annotated_types.Gt, "gt", ">"),
                (annotated_types.Le, "le", "≤"), (annotated_types.Lt, "lt", "<"))


def _strip_annotated(annotation: Any) -> Any:
    return typing.get_args(annotation)[0] if typing.get_origin(annotation) is Annotated else annotation


def _type_parts(annotation: Any) -> tuple[Any, bool]:
    """(annotation without None, whether None is allowed)."""
    annotation = _strip_annotated(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [_strip_annotated(a) for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(members) < len(typing.get_args(annotation))
        if len(members) == 1:
            return members[0], nullable
        return typing.Union[tuple(members)], nullable  # noqa: UP007 - built from a runtime list
    return annotation, False


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "choice"
    if origin in (typing.Union, types.UnionType):
        return "number" if set(typing.get_args(annotation)) == {int, float} else "value"
    if origin is list:
        (item,) = typing.get_args(annotation)
        return f"list[{item.__name__}]"
    if origin is dict or annotation is dict:
        return "dict"
    return getattr(annotation, "__name__", str(annotation))


def _constraints(info: FieldInfo) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for meta in info.metadata:
        for kind, key, _sign in _BOUND_SIGNS:
            if isinstance(meta, kind):
                found[key] = getattr(meta, key)
    return found


def _range_text(constraints: dict[str, Any], extra: dict[str, Any]) -> str:
    if extra.get("range"):
        return str(extra["range"])
    signs = {key: sign for _kind, key, sign in _BOUND_SIGNS}
    return ", ".join(f"{signs[key]} {value}" for key, value in constraints.items())


def _describe(name: str, info: FieldInfo) -> dict[str, Any]:
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    annotation, nullable = _type_parts(info.annotation)
    required = info.default is PydanticUndefined
    choices = _CATALOG_CHOICES.get(name)
    if choices is None and typing.get_origin(annotation) is Literal:
        choices = typing.get_args(annotation)
    constraints = _constraints(info)
    return {
        "name": name,
        "type": _type_name(annotation),
        "nullable": nullable,
        "required": required,
        "default": None if required else info.default,
        "constraints": constraints,
        "range": _range_text(constraints, extra),
        "choices": list(choices) if choices is not None else None,
        "aliases": aliases_of(name),
        "group": extra.get("group", ""),
        "help_en": extra.get("help_en", ""),
        "help_zh": extra.get("help_zh", ""),
        "recommended": extra.get("recommended", ""),
        "advanced": bool(extra.get("advanced", False)),
        "secret": info.exclude is True,
    }


def fields_by_group() -> dict[str, list[dict[str, Any]]]:
    """Every TrainingConfig field described for forms and docs, grouped in GROUPS order."""
    grouped: dict[str, list[dict[str, Any]]] = {group: [] for group in GROUPS}
    for name, info in TrainingConfig.model_fields.items():
        described = _describe(name, info)
        grouped[described["group"]].append(described)
    return grouped
