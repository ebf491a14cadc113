"""GET /finetuning/getParameters: every training argument `trainingArgs` accepts, generated from the schema.

The same reference the console's form and docs/parameters.md are built from (schemas.parameter_reference), so the
API never keeps a hand-written copy of the parameter list."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from tuneforge.schemas import GROUPS, fields_by_group

router = APIRouter(prefix="/finetuning", tags=["finetuning"])


class _View(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True)


class ParameterHelp(_View):
    en: str
    zh: str


class Parameter(_View):
    """One training argument: its name as `trainingArgs` takes it (snake_case, LLaMA-Factory's)."""

    name: str
    type: str = Field(description="int, float, bool, str, choice, number, list[str], dict, …")
    nullable: bool = Field(description="Whether null is accepted (often: 'not set, decide automatically').")
    required: bool
    default: Any = Field(description="The value used when the argument is not given (null for a required one).")
    range: str = Field(description="Allowed range as a person reads it, e.g. '≥ 1' or '> 0, ≤ 1'; empty if none.")
    constraints: dict[str, int | float] = Field(description="The range as numbers: ge, gt, le, lt.")
    choices: list[Any] | None = Field(description="The allowed values of a choice (or a catalog list); else null.")
    aliases: list[str] = Field(description="Other names accepted as input keys for this argument.")
    group: str = Field(description="The section it belongs to; the groups' order is `groups`.")
    help: ParameterHelp
    recommended: str
    advanced: bool = Field(description="Folded away in the console's form; most runs leave it alone.")
    secret: bool = Field(description="Left out when the configuration is written out (e.g. a token).")


class ParameterReference(_View):
    groups: list[str]
    total: int
    items: list[Parameter]


def parameter_reference() -> ParameterReference:
    """Every TrainingConfig field, group by group in `GROUPS` order, each group as the schema declares it."""
    items = [_parameter(field) for fields in fields_by_group().values() for field in fields]
    return ParameterReference(groups=list(GROUPS), total=len(items), items=items)


def _parameter(field: dict[str, Any]) -> Parameter:
    described = {key: value for key, value in field.items() if key not in ("help_en", "help_zh")}
    return Parameter(**described, help=ParameterHelp(en=field["help_en"], zh=field["help_zh"]))


@router.get("/getParameters", response_model=ParameterReference,
            summary="The training parameters trainingArgs accepts: type, default, range, group, help (en / zh)")
def get_parameters() -> ParameterReference:
    return parameter_reference()
