"""Check a file uploaded through OpenAI's Files API (purpose fine-tune) as OpenAI checks fine-tuning data, in one
streamed pass: every line a JSON object, one format per file, every problem with its line and field.

The format is told from the first example: **chat** (`messages` ending with the assistant's answer; supervised
fine-tuning), **preference** (`input.messages` plus `preferred_output` / `non_preferred_output`; DPO) or
**reinforcement** (`messages` ending with the user's message, plus reference fields graders read as `item.*`). The
examples themselves are read by the dataset format tuneforge trains with (formatting "openai", data.openai_chat), so a
file that passes here converts and trains. Torch-free: the API process runs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tuneforge.data.formats import RecordFormat, RecordKind, convert_object
from tuneforge.data.openai_chat import PREFERENCE_KEYS
from tuneforge.data.reading import MAX_RECORD_BYTES, iter_objects
from tuneforge.data.records import DatasetProblem

OpenAIFormat = Literal["chat", "preference", "reinforcement"]
# The dataset purpose each format trains as (a managed dataset's `purpose`), and the record kind it reads into.
FORMAT_PURPOSES: dict[str, str] = {"chat": "sft", "preference": "preference", "reinforcement": "prompt"}
FORMAT_KINDS: dict[str, RecordKind] = {"chat": "chat", "preference": "preference", "reinforcement": "prompt"}
MAX_ERRORS = 100  # problems kept; beyond this only the count grows (a broken 1 GB file must not fill memory)
MAX_LINE_BYTES = MAX_RECORD_BYTES  # one example over this is a problem of its line, never read whole
_OPENAI = RecordFormat("openai")


@dataclass
class FileCheck:
    """The verdict on one file: its format, the examples that passed, the first problems and how many in all."""

    name: str
    format: OpenAIFormat | None = None
    first_line: int = 0  # the example that set the format
    examples: int = 0  # lines holding an example (valid or not); blank lines are not examples
    valid_examples: int = 0
    problems: list[DatasetProblem] = field(default_factory=list)
    problem_count: int = 0
    max_errors: int = MAX_ERRORS

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    @property
    def unreported(self) -> int:
        """Problems found but not kept (over max_errors)."""
        return self.problem_count - len(self.problems)

    def add(self, problems: list[DatasetProblem]) -> None:
        self.problem_count += len(problems)
        self.problems.extend(problems[: max(0, self.max_errors - len(self.problems))])

    def summary(self, listed: int = 20) -> str:
        """The verdict in words, for a file's status_details: the first `listed` problems, then how many more."""
        if self.ok:
            return f"{self.valid_examples} {self.format} example(s)"
        lines = [f"{self.problem_count} problem(s) in {self.name}:"]
        lines += [f"  {_where(problem)}" for problem in self.problems[:listed]]
        if self.problem_count > listed:
            lines.append(f"  … and {self.problem_count - min(listed, len(self.problems))} more not listed")
        return "\n".join(lines)


def check_openai_file(path: Path, name: str | None = None, max_errors: int = MAX_ERRORS) -> FileCheck:
    """Every problem of the file (the first `max_errors` kept, all counted); memory stays bounded by one line
    (MAX_LINE_BYTES) whatever the file's size."""
    verdict = FileCheck(name or path.name, max_errors=max_errors)
    for item in iter_objects(path, verdict.name):
        if isinstance(item, DatasetProblem):
            verdict.examples += item.line > 0
            verdict.add([item])
            continue
        line, obj = item
        verdict.examples += 1
        problems = _check_example(verdict, line, obj)
        verdict.add(problems)
        verdict.valid_examples += not problems
    if verdict.examples == 0:
        verdict.add([DatasetProblem(verdict.name, 0, "", "the file holds no examples: expected one JSON object a "
                                    "line, like {\"messages\": [...]}", "empty_file")])
    return verdict


def example_format(obj: Any) -> OpenAIFormat | None:
    """Which format one example is in; None when it is none of them (it is then checked as the file's format)."""
    if not isinstance(obj, dict):
        return None
    if not PREFERENCE_KEYS.isdisjoint(obj):
        return "preference"
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    last = messages[-1]
    return "chat" if isinstance(last, dict) and last.get("role") == "assistant" else "reinforcement"


def _check_example(verdict: FileCheck, line: int, obj: Any) -> list[DatasetProblem]:
    found = example_format(obj)
    if verdict.format is None and found is not None:
        verdict.format, verdict.first_line = found, line
    expected = verdict.format or "chat"
    if found is not None and found != expected:
        return [_mismatch(verdict, line, obj, found)]
    _, problems = convert_object(obj, _OPENAI, verdict.name, line, FORMAT_KINDS[expected])
    return problems


def _mismatch(verdict: FileCheck, line: int, obj: dict, found: OpenAIFormat) -> DatasetProblem:
    """An example in another format than the file's (set by its first example, `verdict.first_line`)."""
    first, name = verdict.first_line, verdict.name
    if verdict.format == "chat" and found == "reinforcement":
        last = obj["messages"][-1]
        role = last.get("role") if isinstance(last, dict) else None
        return DatasetProblem(name, line, "messages", f"no assistant answer at the end (the last message is "
                              f"{role!r}): a chat example needs the assistant message to learn, and line {first} "
                              "made this a chat file; a prompt without an answer is a reinforcement example, which "
                              "goes in a file of its own", "role_order")
    if verdict.format == "reinforcement" and found == "chat":
        return DatasetProblem(name, line, f"messages[{len(obj['messages']) - 1}]", "a reinforcement example ends with "
                              "the user's message (the prompt the model answers), not an assistant one; put the "
                              "expected answer in a field of its own, e.g. reference_answer, for the graders "
                              f"(line {first} made this a reinforcement file)", "role_order")
    return DatasetProblem(name, line, "", f"mixed formats: this line is a {found} example, but line {first} is a "
                          f"{verdict.format} example; keep one format per file", "mixed_formats")


def _where(problem: DatasetProblem) -> str:
    place = f"line {problem.line}" if problem.line else "file"
    return f"{place}: {problem.field}: {problem.reason}" if problem.field else f"{place}: {problem.reason}"
