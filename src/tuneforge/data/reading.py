"""Read .json / .jsonl dataset files into records, naming file:line:field for every problem.

For .jsonl the line is the physical line; for .json (a top-level array, possibly pretty-printed) it is the
line where the object starts. A .json file that holds JSON Lines is read as such (Hugging Face datasets does),
and one holding a single (pretty-printed) object gives that one record. .jsonl files are streamed line by line;
a .json file is read whole (its objects are not kept).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from tuneforge.data.formats import Record, RecordFormat, RecordKind, convert_object, detect_formatting
from tuneforge.data.records import DatasetError, DatasetProblem, ValidationReport

SUFFIXES = (".json", ".jsonl")
MAX_KEPT_PROBLEMS = 1000  # beyond this only the count grows, so a broken 100 MB file cannot exhaust memory
# A record over this is a problem of its line, never read whole: parsing and tokenising multiply a text's size
# in memory (~130× for a tokenizer's offsets), and one line of a .jsonl must not take the server down.
MAX_RECORD_BYTES = 4 * 1024 * 1024
SKIP_CHUNK = 1024 * 1024
PROGRESS_STEP = 1 << 20  # report bytes read about every MiB
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")

Parsed = tuple[int, Any]  # (line, object)
BytesRead = Callable[[int], None]  # bytes of the file read so far


class _Progress:
    """Calls back with the bytes read at most once per PROGRESS_STEP; `scale` turns characters into bytes."""

    def __init__(self, callback: BytesRead | None, scale: float = 1.0) -> None:
        self.callback, self.scale, self.next_at = callback, scale, PROGRESS_STEP

    def at(self, position: int) -> None:
        if self.callback is not None and position >= self.next_at:
            done = int(position * self.scale)
            self.callback(done)
            self.next_at = position + PROGRESS_STEP


def iter_objects(
    path: Path, display: str | None = None, *, on_bytes: BytesRead | None = None
) -> Iterator[Parsed | DatasetProblem]:
    """Yield (line, object) for each object of the file, or a DatasetProblem where it cannot be parsed.

    `on_bytes(bytes_read)` is called about every MiB (not at the end: the caller knows the file's size).
    """
    name = display or str(path)
    with path.open("rb") as handle:
        head = handle.read(64)
    if head[:2] in _UTF16_BOMS and b"\x00" in head[2:]:  # a UTF-16 BOM, then ASCII as two bytes a character
        yield DatasetProblem(name, 1, "", "the file is UTF-16 text; save it as UTF-8", "not_utf8")
        return
    if path.suffix.lower() == ".jsonl":
        yield from _iter_jsonl(path, name, _Progress(on_bytes))
        return
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        yield DatasetProblem(name, line, "", f"not UTF-8 (byte {error.start}); save the file as UTF-8", "not_utf8")
        return
    progress = _Progress(on_bytes, len(data) / max(1, len(text)))
    del data
    text = text.removeprefix("\ufeff")
    start = _WHITESPACE.match(text, 0).end()  # type: ignore[union-attr]
    if start == len(text):
        yield DatasetProblem(name, 0, "", "empty file: expected a JSON array of objects", "empty_file")
    elif text[start] == "[":
        yield from _iter_json_array(text, start, name, progress)
    elif (whole := _single_object(text, start)) is not None:
        yield whole
    else:
        yield from _iter_json_lines_text(text, name, progress)


def _iter_jsonl(path: Path, name: str, progress: _Progress) -> Iterator[Parsed | DatasetProblem]:
    done = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(_bounded_lines(handle), start=1):
            done += len(raw) if isinstance(raw, bytes) else raw
            progress.at(done)
            if isinstance(raw, int):
                yield DatasetProblem(name, number, "", f"the record is {raw:,} bytes, over the limit of "
                                     f"{MAX_RECORD_BYTES:,} bytes a record; split it into smaller samples",
                                     "record_too_large")
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                yield DatasetProblem(name, number, "", f"not UTF-8 (byte {error.start} of the line); save as UTF-8",
                                     "not_utf8")
                continue
            if number == 1:
                line = line.removeprefix("\ufeff")
            yield from _parse_line(line, number, name)


def _bounded_lines(handle: BinaryIO) -> Iterator[bytes | int]:
    """The file's lines; a line longer than MAX_RECORD_BYTES is never held whole: its length comes instead."""
    while True:
        raw = handle.readline(MAX_RECORD_BYTES + 1)
        if not raw:
            return
        if len(raw) <= MAX_RECORD_BYTES or raw.endswith(b"\n"):
            yield raw
            continue
        size = len(raw)
        while raw and not raw.endswith(b"\n"):  # skip the rest of the line a chunk at a time
            raw = handle.readline(SKIP_CHUNK)
            size += len(raw)
        yield size


def _single_object(text: str, start: int) -> Parsed | None:
    """A .json file holding one object over several lines (not JSON Lines) is one record."""
    if text[start] != "{":
        return None
    try:
        obj, end = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError:
        return None
    if _skip(text, end) != len(text) or "\n" not in text[start:end]:
        return None
    return text.count("\n", 0, start) + 1, obj


def _iter_json_lines_text(text: str, name: str, progress: _Progress) -> Iterator[Parsed | DatasetProblem]:
    done = 0
    for number, line in enumerate(text.split("\n"), start=1):
        done += len(line) + 1
        progress.at(done)
        yield from _parse_line(line, number, name)


def _parse_line(line: str, number: int, name: str) -> Iterator[Parsed | DatasetProblem]:
    if not line.strip():
        return
    try:
        yield number, json.loads(line.rstrip("\r\n"))  # with the newline, an unclosed object reports column 1
    except json.JSONDecodeError as error:
        yield DatasetProblem(name, number, "", f"invalid JSON at column {error.colno}: {error.msg}", "invalid_json")


def _iter_json_array(text: str, pos: int, name: str, progress: _Progress) -> Iterator[Parsed | DatasetProblem]:
    """Walk a top-level array with raw_decode, counting newlines incrementally so it stays linear."""
    decoder = json.JSONDecoder()
    line, counted_to = 1, 0

    def line_at(index: int) -> int:
        nonlocal line, counted_to
        line += text.count("\n", counted_to, index)
        counted_to = index
        progress.at(index)
        return line

    pos = _skip(text, pos + 1)
    if text.startswith("]", pos):
        yield from _trailing(text, pos + 1, name, line_at)
        return
    while True:
        try:
            obj, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as error:
            yield DatasetProblem(name, error.lineno, "", f"invalid JSON at column {error.colno}: {error.msg}",
                                 "invalid_json")
            return
        yield line_at(pos), obj
        pos = _skip(text, end)
        if text.startswith(",", pos):
            pos = _skip(text, pos + 1)
            continue
        if text.startswith("]", pos):
            yield from _trailing(text, pos + 1, name, line_at)
            return
        where = line_at(pos)
        column = pos - text.rfind("\n", 0, pos)
        yield DatasetProblem(name, where, "", f"invalid JSON at column {column}: expected ',' or ']'",
                             "invalid_json")
        return


def _trailing(text: str, pos: int, name: str, line_at: Any) -> Iterator[DatasetProblem]:
    pos = _skip(text, pos)
    if pos < len(text):
        yield DatasetProblem(name, line_at(pos), "", "unexpected text after the closing ']'", "invalid_json")


def _skip(text: str, pos: int) -> int:
    return _WHITESPACE.match(text, pos).end()  # type: ignore[union-attr]


def read_records(
    path: Path,
    fmt: RecordFormat | None = None,
    kind: RecordKind = "chat",
    limit: int | None = None,
    display: str | None = None,
) -> list[Record]:
    """All records of one file (the first `limit` when given); DatasetError lists every problem found."""
    records, problems, total = _scan(path, fmt, kind, limit, display)
    if total:
        raise DatasetError(problems, total)
    if not records:
        raise DatasetError([DatasetProblem(display or str(path), 0, "", "no samples in the file", "empty_file")])
    return records


def validate_file(
    path: Path,
    formatting: str | None = None,
    columns: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
    kind: RecordKind = "chat",
    display: str | None = None,
) -> ValidationReport:
    """Check a whole file without raising: how many records are fine and what is wrong with the rest."""
    fmt = make_format(formatting, columns, tags)
    records, problems, _ = _scan(path, fmt, kind, None, display)
    return ValidationReport(records_ok=len(records), problems=problems)


def make_format(
    formatting: str | None, columns: dict[str, str] | None, tags: dict[str, str] | None
) -> RecordFormat | None:
    """None (detect from the first object) unless the user described the file; LF's default is alpaca."""
    if not (formatting or columns or tags):
        return None
    return RecordFormat(formatting or "alpaca", dict(columns or {}), dict(tags or {}))


def _scan(
    path: Path, fmt: RecordFormat | None, kind: RecordKind, limit: int | None, display: str | None
) -> tuple[list[Record], list[DatasetProblem], int]:
    name = display or str(path)
    records: list[Record] = []
    problems: list[DatasetProblem] = []
    total = 0
    for item in iter_objects(path, name):
        if limit is not None and len(records) >= limit:
            break
        if isinstance(item, DatasetProblem):
            found = [item]
        else:
            line, obj = item
            fmt = fmt or _detect(obj, name, line)
            if isinstance(fmt, DatasetProblem):
                return [], [fmt], 1
            record, found = convert_object(obj, fmt, name, line, kind)
            if record is not None:
                records.append(record)
        total += len(found)
        problems.extend(found[: max(0, MAX_KEPT_PROBLEMS - len(problems))])
    return records, problems, total


def _detect(obj: Any, name: str, line: int) -> RecordFormat | DatasetProblem:
    formatting = detect_formatting(obj)
    if formatting is None:
        return DatasetProblem(name, line, "", "cannot tell the dataset format: expected 'instruction'/'output' "
                              "(alpaca), 'conversations'/'messages' (sharegpt) or 'text' (pre-training); "
                              "describe the file in dataset_info.json with 'formatting' and 'columns'",
                              "unknown_format")
    return RecordFormat(formatting)
