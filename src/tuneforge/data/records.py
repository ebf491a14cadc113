"""Canonical records every dataset format is turned into, and the problems found while reading them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant", "function", "observation"]
# Roles on each side of a turn: the prompt side is what the model reads, the response side what it learns to write.
PROMPT_ROLES: frozenset[str] = frozenset({"user", "observation"})
RESPONSE_ROLES: frozenset[str] = frozenset({"assistant", "function"})

MAX_LISTED_PROBLEMS = 20


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class ChatRecord:
    """One conversation: alternating prompt-side / response-side messages, ending with a response."""

    messages: list[Message]
    system: str | None = None
    origin: str = ""  # "file.jsonl:12", so training-time problems can name the source line
    tools: str | None = None


@dataclass(frozen=True)
class TextRecord:
    """One pre-training document."""

    text: str
    origin: str = ""


@dataclass(frozen=True)
class DatasetProblem:
    file: str
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.reason}" if self.field else f"{where}: {self.reason}"


class DatasetError(ValueError):
    """A dataset file has problems; all problems of the file are collected, the message lists the first ones.

    `total` is the number of problems found when `problems` was capped to save memory.
    """

    def __init__(self, problems: list[DatasetProblem], total: int | None = None) -> None:
        self.problems = list(problems)
        self.total = max(total or 0, len(self.problems))
        super().__init__(self._message())

    def _message(self) -> str:
        shown = self.problems[:MAX_LISTED_PROBLEMS]
        lines = [f"{self.total} problem(s) in the dataset (fix them and run again):"]
        lines += [f"  {problem}" for problem in shown]
        if self.total > len(shown):
            lines.append(f"  … and {self.total - len(shown)} more")
        return "\n".join(lines)


@dataclass
class ValidationReport:
    """What the service shows after checking an uploaded file."""

    records_ok: int
    problems: list[DatasetProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems
