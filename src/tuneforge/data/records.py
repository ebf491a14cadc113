"""Canonical records every dataset format is turned into, and the problems found while reading them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant", "function", "observation"]
# Roles on each side of a turn: the prompt side is what the model reads, the response side what it learns to write.
PROMPT_ROLES: frozenset[str] = frozenset({"user", "observation"})
RESPONSE_ROLES: frozenset[str] = frozenset({"assistant", "function"})

MAX_LISTED_PROBLEMS = 20

PROBLEM_CODES: dict[str, str] = {
    "not_utf8": "the bytes are not UTF-8 text",
    "invalid_json": "the line is not valid JSON",
    "record_too_large": "a record is over the size limit of a record",
    "not_object": "a JSON value that is not an object",
    "missing_field": "a required field is missing",
    "empty_field": "a required field is empty",
    "wrong_type": "a field has the wrong type",
    "unknown_role": "a message has a role the tags do not name",
    "role_order": "the messages of a conversation are in the wrong order",
    "empty_response": "an answer to learn is empty",
    "missing_label": "a KTO record has no true / false label",
    "mixed_formats": "the record is in another format than the rest of the dataset",
    "unknown_format": "the format or field mapping cannot be told from the records",
    "unsupported_purpose": "the format cannot be used for the chosen purpose",
    "empty_file": "the file holds no records",
    "invalid": "other problems",
}


@dataclass(frozen=True)
class Message:
    role: Role
    content: str
    # OpenAI's assistant `weight`: an answer with weight 0 stays in the conversation as context but is not learned
    trained: bool = True


@dataclass(frozen=True)
class ChatRecord:
    """One conversation: alternating prompt-side / response-side messages, ending with a response."""

    messages: list[Message]
    system: str | None = None
    origin: str = ""  # "file.jsonl:12", so training-time problems can name the source line
    tools: str | None = None


@dataclass(frozen=True)
class KTORecord(ChatRecord):
    """A conversation plus a human judgement of its last answer (KTO): True desirable, False undesirable."""

    label: bool = True


@dataclass(frozen=True)
class PreferenceRecord:
    """A prompt and two answers to it, the better one first (DPO, ORPO, SimPO, reward modelling).

    `messages` is the prompt side: alternating turns that end with a user (or observation) message.
    """

    messages: list[Message]
    chosen: Message
    rejected: Message
    system: str | None = None
    origin: str = ""
    tools: str | None = None


@dataclass(frozen=True)
class PromptRecord:
    """A prompt to answer (GRPO, PPO) and its dataset row, which graders read as `item` (reference answers …).

    `messages` is the prompt side, ending with a user (or observation) message; `item` is the row as the file has
    it, so `{{item.answer}}` in a grader reads the row's own field.
    """

    messages: list[Message]
    item: dict[str, object]
    system: str | None = None
    origin: str = ""
    tools: str | None = None


@dataclass(frozen=True)
class TextRecord:
    """One pre-training document."""

    text: str
    origin: str = ""


@dataclass(frozen=True)
class DatasetProblem:
    """One problem of a dataset: file, line (0 for the whole file), field (empty for the whole line), reason.

    `code` sorts problems into kinds a console can count (see PROBLEM_CODES); the reason is for people.
    """

    file: str
    line: int
    field: str
    reason: str
    code: str = "invalid"

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
