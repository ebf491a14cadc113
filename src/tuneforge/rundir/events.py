"""Append-only events.jsonl with a monotonically increasing seq.

The writer writes whole lines: a write that fails half-way (a full disk) is cut back, and a partial last line left
by a crash is cut off when the file is next opened for writing. The reader never raises on a line: a torn, foreign
or out-of-order line is skipped and reported with its line number, and reading goes on from the next valid seq."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneforge.schemas.events import FINAL_EVENT_TYPES, EventType

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SkippedLine:
    line: int  # 1-based line number in events.jsonl
    reason: str

    def __str__(self) -> str:
        return f"events.jsonl line {self.line}: {self.reason}; skipped"


@dataclass
class EventScan:
    events: list[dict[str, Any]] = field(default_factory=list)  # valid events with seq > after_seq, in order
    skipped: list[SkippedLine] = field(default_factory=list)  # bad lines after the last event at or before after_seq


class EventWriter:
    """Appends events; a resumed run continues the seq of the file it finds."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _cut_partial_last_line(path)
        existing = read_events(path)
        self._seq = existing[-1]["seq"] if existing else 0
        self.final_written = False

    def emit(self, event_type: EventType, **fields: Any) -> dict[str, Any]:
        if self.final_written:
            raise RuntimeError(f"a final event was already written to {self.path}")
        self._seq += 1
        event = {"seq": self._seq, "type": str(event_type), "time": round(time.time(), 3), **fields}
        line = json.dumps(event, ensure_ascii=False, default=_json_default) + "\n"
        _append_whole_line(self.path, line.encode("utf-8"))
        if event_type in FINAL_EVENT_TYPES:
            self.final_written = True
        return event


def read_events(path: Path, after_seq: int = 0) -> list[dict[str, Any]]:
    """Valid events with seq > after_seq (bad lines skipped: see scan_events)."""
    return scan_events(path, after_seq).events


def scan_events(path: Path, after_seq: int = 0) -> EventScan:
    """Events with seq > after_seq and the bad lines met on the way. A last line without its newline is still
    being written: neither read nor reported."""
    scan = EventScan()
    if not path.is_file():
        return scan
    last_seq = 0
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.endswith(b"\n"):
                break
            event, reason = _parse_line(raw, last_seq)
            if event is None:
                if last_seq >= after_seq:
                    scan.skipped.append(SkippedLine(number, reason))
                continue
            last_seq = event["seq"]
            if last_seq > after_seq:
                scan.events.append(event)
    return scan


def _parse_line(raw: bytes, last_seq: int) -> tuple[dict[str, Any] | None, str]:
    try:
        event = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # torn or foreign bytes; also a 5,000-digit number, a 100,000-deep array
        return None, "not valid JSON (a torn write or a foreign line)"
    if not isinstance(event, dict) or type(event.get("seq")) is not int or not isinstance(event.get("type"), str):
        return None, "not an event (an event has an integer seq and a type)"
    if event["seq"] <= last_seq:
        return None, f"seq {event['seq']} does not follow {last_seq} (a repeated or foreign line)"
    return event, ""


def _append_whole_line(path: Path, line: bytes) -> None:
    """One write on an O_APPEND descriptor, so a reader never sees two events interleaved; if it fails part-way,
    the file is cut back to where it was, so no half line stays behind."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        try:
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(f"short write to {path}: {written} of {len(line)} bytes")
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)


def _cut_partial_last_line(path: Path) -> None:
    """A writer that died mid-line left a tail without its newline: cut it off before appending after it."""
    if not path.is_file():
        return
    with path.open("rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        keep = _end_of_last_whole_line(f, size)
        log.warning("%s ended in a partial line (%d bytes); cut off before appending", path, size - keep)
        f.truncate(keep)


def _end_of_last_whole_line(f: Any, size: int) -> int:
    position, block = size, 64 * 1024
    while position > 0:
        start = max(0, position - block)
        f.seek(start)
        chunk = f.read(position - start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        position = start
    return 0


def final_event(path: Path) -> dict[str, Any] | None:
    for event in reversed(read_events(path)):
        if event["type"] in FINAL_EVENT_TYPES:
            return event
    return None


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
