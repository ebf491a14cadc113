"""The create-task form, generated from the schema.

Every training parameter (name, type, default, range, choices, help in zh / en, recommended values, basic or
advanced) comes from `schemas.parameter_reference.fields_by_group()`; this module only decides *where* each schema
group appears: the form's steps (model → data → parameters → output → confirm) and, inside "parameters", the
console's sections (hyper-parameters, LoRA, advanced: quantization / RoPE / acceleration, others: logging and save
intervals, warm-up, NEFTune, optimizer).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from tuneforge.schemas import ALIASES
from tuneforge.schemas.parameter_reference import fields_by_group
from tuneforge.schemas.training import COMPUTE_TYPE_KEY
from tuneforge.service.tasks.planning import TOP_LEVEL

STEPS: tuple[str, ...] = ("model", "data", "parameters", "output", "confirm")

# Schema group → section of the form.
GROUP_SECTIONS: dict[str, str] = {
    "model": "model", "method": "method", "data": "data", "training": "hyper", "lora": "lora", "freeze": "freeze",
    "quantization": "advanced", "acceleration": "advanced", "eval": "eval", "output": "others", "guard": "others",
}
# The console files these under another heading than their schema group.
FIELD_SECTIONS: dict[str, str] = {
    "rope_scaling": "advanced",
    "warmup_steps": "others",
    "warmup_ratio": "others",
    "neftune_noise_alpha": "others",
    "optim": "others",
}
# Section → the step it is shown in; sections appear in this order.
SECTION_STEPS: dict[str, str] = {
    "model": "model", "method": "model", "data": "data", "hyper": "parameters", "lora": "parameters",
    "freeze": "parameters", "advanced": "parameters", "eval": "parameters", "others": "parameters",
}
# A section shown only for one finetuning_type (the other method's options would only confuse).
SECTION_METHOD: dict[str, str] = {"lora": "lora", "freeze": "freeze"}


@dataclass
class FormField:
    """One input: `name` is the API's path (trainingArgs.<key>) so that an error's `details[].field` finds it."""

    key: str
    name: str
    widget: str  # text | number | checkbox | select | textarea | password
    kind: str  # how the page turns the text back into JSON: str | number | bool | choice | list | dict
    value: str
    default_text: str  # the default as the input holds it (the page compares against it)
    default_shown: str  # the default as people read it
    checked: bool
    choices: list[tuple[str, str]]  # (value as sent, text shown)
    nullable: bool
    help_en: str
    help_zh: str
    recommended: str
    range: str
    advanced: bool
    type_name: str

    def help(self, lang: str) -> str:
        return self.help_zh if lang == "zh" and self.help_zh else self.help_en


@dataclass
class Section:
    name: str
    method: str | None
    basic: list[FormField] = field(default_factory=list)
    advanced: list[FormField] = field(default_factory=list)


def as_text(value: Any) -> str:
    """How a value appears in a text input: lists comma-separated (as LLaMA-Factory writes them), dicts as JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        if any(isinstance(v, dict) for v in value):  # e.g. rewards with inline graders: commas would cut them
            return json.dumps(value, ensure_ascii=False)
        return ", ".join(as_text(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _widget(described: dict[str, Any]) -> tuple[str, str]:
    type_name = described["type"]
    if described["secret"]:
        return "password", "str"
    if type_name == "bool":
        # An optional flag has three states (unset = automatic), which a checkbox cannot show.
        return ("select", "choice") if described["nullable"] else ("checkbox", "bool")
    if described["choices"] and not type_name.startswith("list"):
        return "select", "choice"
    if type_name in ("int", "float", "number"):
        return "number", "number"
    if type_name.startswith("list"):
        return "text", "list"
    if type_name == "dict":
        return "textarea", "dict"
    return "text", "str"


def form_field(described: dict[str, Any], values: dict[str, Any]) -> FormField:
    key = described["name"]
    widget, kind = _widget(described)
    current = values.get(key, described["default"])
    # A choice travels as JSON so that 4 stays a number and "lora" a string; None is the "unset" entry.
    encode = (lambda v: json.dumps(v)) if kind == "choice" else as_text
    options = described["choices"] or ([True, False] if described["type"] == "bool" else [])
    choices = [(json.dumps(c), as_text(c)) for c in options] if kind == "choice" else []
    if kind == "choice" and described["nullable"]:
        choices.insert(0, ("null", "—"))
    if kind == "choice" and encode(current) not in {value for value, _ in choices}:
        choices.append((encode(current), str(current)))  # a copied task's value the catalog does not list
    return FormField(
        key=key, name=f"trainingArgs.{key}", widget=widget, kind=kind, value=encode(current),
        default_text=encode(described["default"]), default_shown=as_text(described["default"]) or "—",
        checked=bool(current) if kind == "bool" else False,
        choices=choices, nullable=described["nullable"],
        help_en=described["help_en"], help_zh=described["help_zh"], recommended=described["recommended"],
        range=described["range"], advanced=described["advanced"], type_name=described["type"])


@cache
def _described() -> dict[str, list[dict[str, Any]]]:
    """The schema walk, once per process (the schema does not change while the server runs)."""
    return fields_by_group()


def schema_defaults() -> dict[str, Any]:
    """Every training parameter's default, by name."""
    return {d["name"]: d["default"] for group in _described().values() for d in group}


def form_steps(values: dict[str, Any] | None = None) -> dict[str, list[Section]]:
    """step → its sections with their fields, values pre-filled from `values` (a copied task's arguments)."""
    values = values or {}
    sections = {name: Section(name=name, method=SECTION_METHOD.get(name)) for name in SECTION_STEPS}
    for group, described_fields in _described().items():
        for described in described_fields:
            if described["name"] in TOP_LEVEL:  # base model, dataset, output dir: the form's own inputs
                continue
            section = sections[FIELD_SECTIONS.get(described["name"], GROUP_SECTIONS[group])]
            item = form_field(described, values)
            (section.advanced if item.advanced else section.basic).append(item)
    steps: dict[str, list[Section]] = {step: [] for step in STEPS}
    for name, section in sections.items():
        if section.basic or section.advanced:
            steps[SECTION_STEPS[name]].append(section)
    return steps


def copied_values(training_args: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A task's stored arguments as the form's values: aliases (lr, lora_r, …) under their field names and
    compute_type as the bf16 / fp16 flags. Returns (values, anything the form has no input for)."""
    fields = {described["name"] for group in _described().values() for described in group}
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in training_args.items():
        if key == COMPUTE_TYPE_KEY and value in ("bf16", "fp16"):
            values[str(value)] = True
            continue
        name = ALIASES.get(key, key)
        if name in TOP_LEVEL:
            continue
        (values if name in fields else extra)[name] = value
    return values, extra
