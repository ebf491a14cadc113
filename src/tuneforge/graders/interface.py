"""The types every grader returns or takes: a score with its reason, the judge a model grader asks, sandbox limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class GradeResult:
    """One sample's grade.

    `score` is 0.0 when grading failed, and `reason` then says why (timeout, memory, network, bad output); a
    genuine 0 has no reason. `details` holds what explains the score: a multi grader's sub-scores, the judge's
    raw reply, template references that were missing from the sample or item.
    """

    score: float
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class JudgeClient(Protocol):
    """A chat model that score_model / label_model graders ask. Returns the reply's text; raises on any failure
    (the grader turns the exception into a 0 with its message as the reason)."""

    def complete(self, model: str, messages: list[dict[str, str]], sampling: dict[str, Any]) -> str: ...


@dataclass(frozen=True)
class SandboxLimits:
    """What one python grader call may use."""

    seconds: float = 5.0  # wall clock per sample
    memory_mb: int = 512  # address space of the sandbox process
