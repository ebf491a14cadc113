"""Errors for a bad training configuration: every problem at once, each naming its field."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a configuration: the field (LLaMA-Factory name) and what to do about it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class ConfigError(ValueError):
    """All problems found in one configuration. `str()` is a short list a user can act on."""

    def __init__(self, problems: Sequence[ConfigProblem], source: str | None = None) -> None:
        self.problems: list[ConfigProblem] = list(problems)
        self.source = source
        super().__init__(self._render())

    def _render(self) -> str:
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        where = self.source or "the training configuration"
        lines = [f"{count} {noun} in {where}:"]
        lines += [f"  - {problem}" for problem in self.problems]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self._render()

    def as_details(self) -> list[dict[str, str]]:
        """The problems as JSON-ready dicts, for the API's `error.details`."""
        return [{"field": p.field, "message": p.message} for p in self.problems]


# A model validator's "field: what is wrong", which pydantic reports without a location as "Value error, …"
_NAMED_MODEL_ERROR = re.compile(r"(?:Value error, )?([a-z_][a-z0-9_]*): (.+)", re.DOTALL)


def validation_problems(exc: Any, default_field: str = "spec") -> list[ConfigProblem]:
    """A pydantic ValidationError as ConfigProblems, each naming its field path (e.g. `models.0.label`); a model
    validator's error that starts with a field's name is reported at that field."""
    problems = []
    for error in exc.errors():
        field, message = ".".join(map(str, error["loc"])), error["msg"]
        if not field and (named := _NAMED_MODEL_ERROR.fullmatch(message)):
            field, message = named.groups()
        problems.append(ConfigProblem(field or default_field, message))
    return problems
