"""events.jsonl survives damage: bad lines are skipped and reported by line, reading goes on from the next valid
seq, and the writer never leaves half a line behind."""

from __future__ import annotations

import json
import os

import pytest

from tuneforge.rundir import EventWriter, read_events, scan_events
from tuneforge.schemas.events import EventType


def _line(seq: int, kind: str = "progress", **fields) -> str:
    return json.dumps({"seq": seq, "type": kind, "time": 1.0, **fields}) + "\n"


def test_bad_lines_are_skipped_and_reported_and_reading_goes_on(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes((_line(1, "started") + '{"seq": 2, "ty\n' + "\xff\xfe garbage\n" + '[1, 2]\n'
                      + _line(1, "progress") + _line(3, step=3)).encode("utf-8", "surrogateescape")
                     + b"\xff\n" + _line(4, "completed").encode() + b'{"seq": 5, "type": "pro')
    scan = scan_events(path)
    assert [e["seq"] for e in scan.events] == [1, 3, 4]  # the torn tail (no newline yet) is not read
    assert [(s.line, s.reason.split(" ")[0]) for s in scan.skipped] == [
        (2, "not"), (3, "not"), (4, "not"), (5, "seq"), (7, "not")]
    assert "events.jsonl line 2: not valid JSON" in str(scan.skipped[0])


def test_after_seq_reports_only_lines_past_what_was_read(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(_line(1) + "torn\n" + _line(2) + "torn again\n" + _line(3), encoding="utf-8")
    scan = scan_events(path, after_seq=2)
    assert [e["seq"] for e in scan.events] == [3] and [s.line for s in scan.skipped] == [4]


def test_the_writer_cuts_a_partial_last_line_and_goes_on_from_the_last_seq(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(_line(1, "started") + _line(2) + '{"seq": 3, "type": "progr', encoding="utf-8")
    writer = EventWriter(path)
    event = writer.emit(EventType.PROGRESS, step=3)
    assert event["seq"] == 3
    assert [e["seq"] for e in read_events(path)] == [1, 2, 3] and not scan_events(path).skipped


def test_a_failed_write_leaves_no_half_line(tmp_path, monkeypatch):
    path = tmp_path / "events.jsonl"
    writer = EventWriter(path)
    writer.emit(EventType.STARTED)
    real_write = os.write

    def disk_full(fd, data):
        real_write(fd, data[:7])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(OSError):
        writer.emit(EventType.PROGRESS, step=1)
    monkeypatch.setattr(os, "write", real_write)
    assert path.read_text(encoding="utf-8").endswith("\n") and not scan_events(path).skipped
    assert [e["type"] for e in read_events(path)] == ["started"]


def test_numbers_and_nesting_json_refuses_to_parse_are_skipped_not_fatal(tmp_path):
    path = tmp_path / "events.jsonl"
    huge_number = '{"seq": 2, "type": "progress", "loss": ' + "9" * 5000 + "}\n"
    deep = "[" * 200_000 + "]" * 200_000 + "\n"
    path.write_text(_line(1, "started") + huge_number + deep + _line(3, "completed"), encoding="utf-8")
    scan = scan_events(path)
    assert [e["seq"] for e in scan.events] == [1, 3]
    assert [s.line for s in scan.skipped] == [2, 3]
