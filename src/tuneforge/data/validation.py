"""Validate a whole dataset for its purpose, by line: every problem as file:line:field:reason, in one streamed pass.

Torch-free (the API process runs it). The field mapping is given in LLaMA-Factory's dataset_info.json terms
(formatting, columns, tags) or detected from the first records when their fields are the standard ones.
`DatasetScan` is the shared single pass; `dataset_statistics` walks the same rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from tuneforge.data.formats import (
    OPENAI_TAGS,
    SHAREGPT_TAGS,
    Record,
    RecordFormat,
    convert_object,
    purpose_kind,
)
from tuneforge.data.openai_chat import PREFERENCE_KEYS
from tuneforge.data.reading import Parsed, iter_objects, make_format
from tuneforge.data.records import DatasetProblem

Progress = Callable[[int, int], None]  # (bytes_read, total_bytes)
Items = Iterator[tuple[int, Parsed | DatasetProblem]]  # (file index, object or unreadable line)
DETECT_SAMPLE = 20  # objects looked at to detect the mapping
MAX_SAMPLE = 1000  # lines held back at most while looking for them
_CONVERSATION_KEYS = ("conversations", "messages")
_ALPACA_KEYS = frozenset({"instruction", "input", "output", "completion", "chosen", "rejected"})
# LLaMA-Factory's column -> field names that count as standard (the first is LF's default; others are TRL's).
_ALPACA_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("prompt", ("instruction", "prompt")), ("query", ("input",)), ("response", ("output", "completion")),
    ("system", ("system",)), ("history", ("history",)), ("chosen", ("chosen",)), ("rejected", ("rejected",)),
    ("kto_tag", ("kto_tag", "label")),
)
_SHAPE_NAMES = {"alpaca": "alpaca (instruction / output fields)", "sharegpt": "sharegpt (a list of messages)",
                "text": "pre-training text (a 'text' field)"}


class MappingNotDetected(ValueError):
    """The format / field mapping cannot be told from the records; the message says what to give instead."""


# ---------------------------------------------------------------- reports (JSON-ready; the API returns them)


class ProblemEntry(BaseModel):
    file: str
    line: int = Field(description="1-based line; 0 when the problem is about the whole file")
    field: str = Field(description="the field, e.g. 'output' or 'conversations[2].from'; empty for the whole line")
    reason: str
    code: str = Field(description="kind of problem, see tuneforge.data.records.PROBLEM_CODES")

    def __str__(self) -> str:
        return str(DatasetProblem(self.file, self.line, self.field, self.reason, self.code))


class FileReport(BaseModel):
    file: str
    size_bytes: int
    rows_ok: int
    rows_bad: int
    problem_count: int


class DatasetReport(BaseModel):
    valid: bool = Field(description="no problem at all: the dataset can be used by a task")
    purpose: str
    formatting: str | None = Field(description="given or detected; None when it could not be detected")
    columns: dict[str, str]
    tags: dict[str, str]
    mapping_detected: bool = Field(description="formatting / columns / tags were detected from the records")
    rows_ok: int
    rows_bad: int
    problem_count: int = Field(description="every problem found, listed or not")
    problems: list[ProblemEntry] = Field(description="the first problems, at most max_listed")
    problems_by_code: dict[str, int]
    files: list[FileReport]
    bytes_read: int


# ---------------------------------------------------------------- mapping detection


def record_shape(obj: Any) -> str | None:
    """Which standard format one object looks like: 'sharegpt', 'alpaca', 'text' or None."""
    if not isinstance(obj, dict):
        return None
    if any(isinstance(obj.get(key), list) for key in _CONVERSATION_KEYS):
        return "sharegpt"
    if not _ALPACA_KEYS.isdisjoint(obj) or isinstance(obj.get("prompt"), str):
        return "alpaca"
    return "text" if "text" in obj else None


def detect_mapping(first_objects: Sequence[Any]) -> tuple[str, dict[str, str], dict[str, str]]:
    """(formatting, columns, tags) in dataset_info.json terms, from the first records of a dataset.

    The first object decides the format; the others fill in optional columns (system, history, ...).
    Raises MappingNotDetected when the fields are not standard ones.
    """
    objects = [obj for obj in first_objects if isinstance(obj, dict)]
    if not objects:
        raise MappingNotDetected("cannot tell the dataset format: no JSON object among the first records; "
                                 "each record must be an object like {\"instruction\": ..., \"output\": ...}")
    shape = record_shape(objects[0])
    if shape == "sharegpt":
        return _detect_sharegpt([obj for obj in objects if record_shape(obj) == "sharegpt"])
    if shape == "alpaca":
        return "alpaca", _alpaca_columns([obj for obj in objects if record_shape(obj) == "alpaca"]), {}
    if shape == "text":
        return "alpaca", {"prompt": "text"}, {}
    fields = ", ".join(repr(key) for key in list(objects[0])[:8]) or "none"
    raise MappingNotDetected(
        f"cannot tell the dataset format from the fields {fields}: expected 'instruction' / 'output' (alpaca), "
        "'conversations' or 'messages' (sharegpt / OpenAI) or 'text' (pre-training); give formatting and "
        "columns, e.g. columns {\"prompt\": \"question\", \"response\": \"answer\"}")


def _alpaca_columns(objects: list[dict]) -> dict[str, str]:
    seen: dict[str, Any] = {}
    for obj in objects:
        for key, value in obj.items():
            seen.setdefault(key, value)
    columns: dict[str, str] = {}
    for column, names in _ALPACA_FIELDS:
        for name in names:
            usable = name in seen and (name not in ("prompt", "label") or isinstance(seen[name], str | bool))
            if usable:
                columns[column] = name
                break
    return columns


def _detect_sharegpt(objects: list[dict]) -> tuple[str, dict[str, str], dict[str, str]]:
    first = objects[0]
    key = next(name for name in _CONVERSATION_KEYS if isinstance(first.get(name), list))
    messages = [item for obj in objects for item in obj.get(key) or [] if isinstance(item, dict)]
    if not messages:
        raise MappingNotDetected(f"cannot tell the message fields: '{key}' holds no message objects")
    if "from" in messages[0] and "value" in messages[0]:
        role_key, content_key = "from", "value"
    elif "role" in messages[0] and "content" in messages[0]:
        role_key, content_key = "role", "content"
    else:
        found = ", ".join(repr(name) for name in messages[0]) or "none"
        raise MappingNotDetected(f"cannot tell the message fields of '{key}' (found {found}): expected "
                                 "from / value (ShareGPT) or role / content (OpenAI); give tags.role_tag and "
                                 "tags.content_tag")
    roles = {item.get(role_key) for item in messages}
    says_sharegpt, says_openai = bool(roles & {"human", "gpt"}), bool(roles & {"user", "assistant"})
    # The role values usually go with the keys (from: human / gpt, role: user / assistant), not always.
    openai_roles = (says_openai and not says_sharegpt) if role_key == "from" else (says_openai or not says_sharegpt)
    tags = dict(OPENAI_TAGS if openai_roles else SHAREGPT_TAGS)
    tags.update(role_tag=role_key, content_tag=content_key)
    columns = {"messages": key}
    for column in ("system", "tools", "chosen", "rejected", "kto_tag"):
        if any(column in obj for obj in objects):
            columns[column] = column
    return "sharegpt", columns, tags


def format_shape(fmt: RecordFormat) -> str:
    """The standard shape a format reads: 'sharegpt', 'alpaca' or 'text' (alpaca reading only a text field)."""
    if fmt.formatting in ("sharegpt", "openai"):
        return "sharegpt"
    if fmt.formatting == "text" or fmt.column("prompt") == "text":
        return "text"
    return "alpaca"


# ---------------------------------------------------------------- the shared single pass


@dataclass(slots=True)
class ScannedRow:
    """One object (or unreadable line) of a file: its record when valid, else its problems.

    line 0 marks a problem of the whole file (e.g. it is empty); it is not a row.
    """

    file_index: int
    line: int
    record: Record | None
    problems: list[DatasetProblem]


class DatasetScan:
    """One streamed pass over a dataset's files: never holds more than one record (plus the detection sample).

    Raises ValueError naming the field when the arguments cannot work (unknown purpose, sharegpt for pt, ...).
    """

    def __init__(
        self,
        files: Sequence[Path],
        *,
        formatting: str | None,
        purpose: str,
        columns: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.files = [Path(path) for path in files]
        self.names = display_names(self.files)
        self.purpose = purpose
        self.kind = purpose_kind(purpose, formatting)
        # Without columns / tags they are detected from the records (also when the formatting is given).
        self.given_formatting = formatting
        self.fmt: RecordFormat | None = make_format(formatting, columns, tags) if columns or tags else None
        self.detected = self.fmt is None
        self.sizes = [path.stat().st_size for path in self.files]
        self.total_bytes = sum(self.sizes)
        self.progress = progress
        self._setup_problem: DatasetProblem | None = None

    def rows(self) -> Iterator[ScannedRow]:
        stream = self._items()
        if self.fmt is None:
            stream = self._detect(stream)
        for file_index, item in stream:
            if isinstance(item, DatasetProblem):
                yield ScannedRow(file_index, item.line, None, [item])
                continue
            line, obj = item
            if self.fmt is None:  # nothing to check against: the setup problem is reported once, at this row
                problem, self._setup_problem = self._setup_problem, None
                yield ScannedRow(file_index, line, None, [problem] if problem else [])
                continue
            record, problems = convert_object(obj, self.fmt, self.names[file_index], line, self.kind)
            if problems:
                problems = self._mixed(obj, problems)
            yield ScannedRow(file_index, line, record, problems)

    def mapping(self) -> tuple[str | None, dict[str, str], dict[str, str]]:
        if self.fmt is None:
            return None, {}, {}
        return self.fmt.formatting, dict(self.fmt.columns), dict(self.fmt.tags)

    def _items(self) -> Items:
        done = 0
        for index, path in enumerate(self.files):
            count = 0

            def on_bytes(read: int, base: int = done) -> None:
                self._report(base + read)

            for item in iter_objects(path, self.names[index], on_bytes=on_bytes):
                count += 1
                yield index, item
            if not count:
                yield index, DatasetProblem(self.names[index], 0, "", "no records in the file", "empty_file")
            done += self.sizes[index]
            self._report(done)

    def _report(self, done: int) -> None:
        if self.progress is not None:
            self.progress(min(done, self.total_bytes), self.total_bytes)

    def _detect(self, stream: Items) -> Items:
        """Look at the first DETECT_SAMPLE objects, settle the mapping, then replay them and go on."""
        sample: list[tuple[int, Parsed | DatasetProblem]] = []
        objects: list[tuple[int, int, Any]] = []
        for entry in stream:
            sample.append(entry)
            if not isinstance(entry[1], DatasetProblem):
                objects.append((entry[0], *entry[1]))
                if len(objects) >= DETECT_SAMPLE:
                    break
            if len(sample) >= MAX_SAMPLE:  # a file of broken lines must not fill memory while we wait
                if objects:
                    break
                yield from sample  # only unreadable lines so far: they need no mapping
                sample.clear()
        self._settle(objects)
        yield from sample
        yield from stream

    def _settle(self, objects: list[tuple[int, int, Any]]) -> None:
        """The mapping from the records; with a given formatting, its defaults when the records say otherwise."""
        given = self.given_formatting
        try:
            formatting, columns, tags = detect_mapping([obj for _, _, obj in objects])
        except MappingNotDetected as error:
            if given is None and objects:
                self._problem(objects[0], str(error), "unknown_format")
            self._use_given()
            return
        if given is not None and formatting != given:
            self._use_given()
            return
        first = next(obj for _, _, obj in objects if isinstance(obj, dict))
        if record_shape(first) == "text" and self.purpose != "pt":
            self._problem(objects[0], f"the records hold only 'text' (pre-training documents), which cannot be "
                          f"used for purpose {self.purpose!r}; choose purpose pt, or give records with instruction "
                          "/ output", "unsupported_purpose")
            return
        try:
            purpose_kind(self.purpose, formatting)
        except ValueError as error:
            self._problem(objects[0], str(error).removeprefix("purpose: "), "unsupported_purpose")
            return
        self.fmt = RecordFormat(formatting, columns, tags)

    def _use_given(self) -> None:
        if self.given_formatting is not None:
            self.fmt, self.detected = RecordFormat(self.given_formatting), False

    def _problem(self, where: tuple[int, int, Any], reason: str, code: str) -> None:
        file_index, line, _ = where
        self._setup_problem = DatasetProblem(self.names[file_index], line, "", reason, code)

    def _mixed(self, obj: Any, problems: list[DatasetProblem]) -> list[DatasetProblem]:
        """A record in another standard format than the dataset gets one clear problem instead of many."""
        assert self.fmt is not None
        if self.fmt.formatting == "openai" and isinstance(obj, dict) and not PREFERENCE_KEYS.isdisjoint(obj):
            return problems  # OpenAI's preference shape ("input" is no alpaca column here): its own problems tell
        shape, expected = record_shape(obj), format_shape(self.fmt)
        main = self.fmt.column("messages" if expected == "sharegpt" else "prompt")
        if shape is None or shape == expected or main in obj:
            return problems
        first = problems[0]
        reason = (f"this record is {_SHAPE_NAMES[shape]} but the dataset is read as {_SHAPE_NAMES[expected]}; "
                  "keep one format per dataset")
        return [DatasetProblem(first.file, first.line, "", reason, "mixed_formats")]


def display_names(files: Sequence[Path]) -> list[str]:
    """File names as the user knows them (the upload's name); full paths only where two names clash."""
    names = [path.name for path in files]
    clashes = {name for name, count in Counter(names).items() if count > 1}
    return [str(path) if path.name in clashes else path.name for path in files]


# ---------------------------------------------------------------- validation


def validate_dataset(
    files: list[Path],
    *,
    formatting: str | None,
    purpose: str,
    columns: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
    max_listed: int = 100,
    progress: Progress | None = None,
) -> DatasetReport:
    """Check every record of every file for `purpose` (sft | pt | preference | kto); never raises for bad data.

    ValueError (naming the field) only for arguments that cannot work: an unknown purpose or formatting, or a
    formatting that cannot hold that purpose (sharegpt for pt).
    """
    scan = DatasetScan(files, formatting=formatting, purpose=purpose, columns=columns, tags=tags,
                       progress=progress)
    tally = _Tally(scan.names, max_listed)
    for row in scan.rows():
        tally.add(row)
    formatting_used, columns_used, tags_used = scan.mapping()
    return DatasetReport(
        valid=tally.total_problems == 0, purpose=purpose, formatting=formatting_used, columns=columns_used,
        tags=tags_used, mapping_detected=scan.detected and scan.fmt is not None, rows_ok=sum(tally.ok),
        rows_bad=sum(tally.bad), problem_count=tally.total_problems, problems=tally.listed,
        problems_by_code=dict(tally.by_code),
        files=[FileReport(file=name, size_bytes=size, rows_ok=ok, rows_bad=bad, problem_count=count)
               for name, size, ok, bad, count in zip(scan.names, scan.sizes, tally.ok, tally.bad, tally.per_file,
                                                     strict=True)],
        bytes_read=scan.total_bytes,
    )


class _Tally:
    def __init__(self, names: list[str], max_listed: int) -> None:
        self.max_listed = max(0, max_listed)
        self.ok, self.bad, self.per_file = [0] * len(names), [0] * len(names), [0] * len(names)
        self.listed: list[ProblemEntry] = []
        self.by_code: Counter[str] = Counter()
        self.total_problems = 0

    def add(self, row: ScannedRow) -> None:
        if row.line and not row.problems:
            self.ok[row.file_index] += row.record is not None
            self.bad[row.file_index] += row.record is None
            return
        if row.line:
            self.bad[row.file_index] += 1
        self.per_file[row.file_index] += len(row.problems)
        self.total_problems += len(row.problems)
        for problem in row.problems:
            self.by_code[problem.code] += 1
            if len(self.listed) < self.max_listed:
                self.listed.append(ProblemEntry(file=problem.file, line=problem.line, field=problem.field,
                                                reason=problem.reason, code=problem.code))
