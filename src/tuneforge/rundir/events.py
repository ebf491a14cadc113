"""Append-only events.jsonl with a monotonically increasing seq, and a reader that tolerates a torn last line."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from tuneforge.schemas.events import FINAL_EVENT_TYPES, EventType


class EventWriter:
    """Appends events; a resumed run continues the seq of the file it finds."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existing = read_events(path)
        self._seq = existing[-1]["seq"] if existing else 0
        self.final_written = False

    def emit(self, event_type: EventType, **fields: Any) -> dict[str, Any]:
        if self.final_written:
            raise RuntimeError(f"a final event was already written to {self.path}")
        self._seq += 1
        event = {"seq": self._seq, "type": str(event_type), "time": round(time.time(), 3), **fields}
        line = json.dumps(event, ensure_ascii=False, default=_json_default) + "\n"
        # One write per line on an O_APPEND descriptor: a reader never sees two events interleaved.
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        if event_type in FINAL_EVENT_TYPES:
            self.final_written = True
        return event


def read_events(path: Path, after_seq: int = 0) -> list[dict[str, Any]]:
    """Events with seq > after_seq. A last line without its newline is still being written: skipped."""
    if not path.is_file():
        return []
    events = []
    with path.open("r", encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break
            event = json.loads(line)
            if event["seq"] > after_seq:
                events.append(event)
    return events


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
