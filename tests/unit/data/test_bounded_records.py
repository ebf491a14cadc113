"""A record too large to hold is a problem of its line, read past in chunks: validating a file whose one record
is 64 MB on one line stays within a small memory budget and reports the line; long texts are counted in pieces."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from tests.fixtures.tiny import build_tokenizer
from tuneforge.data.reading import MAX_RECORD_BYTES, iter_objects
from tuneforge.data.records import DatasetProblem
from tuneforge.data.token_counting import CHUNK_CHARS, TokenCounter, _chunks


def test_an_oversized_line_is_a_problem_and_the_next_lines_still_read(tmp_path):
    path = tmp_path / "data.jsonl"
    big = json.dumps({"instruction": "x" * (MAX_RECORD_BYTES + 10), "output": "y"})
    path.write_text("\n".join([json.dumps({"instruction": "a", "output": "b"}), big,
                               json.dumps({"instruction": "c", "output": "d"})]) + "\n", encoding="utf-8")
    items = list(iter_objects(path))
    assert [i[0] for i in items if not isinstance(i, DatasetProblem)] == [1, 3]
    (problem,) = [i for i in items if isinstance(i, DatasetProblem)]
    assert problem.line == 2 and problem.code == "record_too_large" and "split it" in problem.reason


def test_statistics_of_huge_records_stay_within_a_memory_budget(tmp_path):
    """A 64 MB record is refused unread; a 3.5 MB one without a space is tokenised in pieces (whole, it took
    ~1 GB: a tokenizer holds offsets for every token)."""
    build_tokenizer(tmp_path / "tok")
    huge, long = tmp_path / "huge.jsonl", tmp_path / "long.jsonl"
    with huge.open("w", encoding="utf-8") as f:
        f.write('{"instruction": "' + "word " * (64 * 1024 * 1024 // 5) + '", "output": "y"}\n')
    long.write_text('{"instruction": "' + "abcdefghij" * (350 * 1024) + '", "output": "y"}\n', encoding="utf-8")
    script = textwrap.dedent(f"""
        from pathlib import Path
        from tuneforge.data.statistics import dataset_statistics
        stats = dataset_statistics({{"train": [Path({str(huge)!r}), Path({str(long)!r})]}}, formatting=None,
                                   purpose="sft", tokenizer_file=Path({str(tmp_path / "tok" / "tokenizer.json")!r}))
        print(stats.splits["train"].rows_invalid, stats.splits["train"].tokens.max)
        # VmHWM, not ru_maxrss: the latter keeps the peak of the pytest process this one was forked from.
        status = Path("/proc/self/status").read_text()
        print(int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) // 1024)
    """)
    # One tokenizer thread and two malloc arenas: the peak then depends on the data, not on how the threads ran.
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "MALLOC_ARENA_MAX": "2"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         env=env).stdout.split("\n")
    assert out[0] == "1 3584002", out  # the huge record is a bad row; the long one is counted exactly
    # ~300 MB measured (the interpreter and imports ~150 MB); encoding the long record whole took ~1 GB.
    assert int(out[1]) < 800, f"peak RSS {out[1]} MB"


def test_long_texts_are_counted_in_pieces_that_add_up():
    text = " ".join(f"w{i}" for i in range(60_000))
    pieces = _chunks(text)
    assert len(pieces) > 1 and "".join(pieces) == text and all(len(p) <= CHUNK_CHARS for p in pieces)
    assert TokenCounter(None).count([text]) == [round(len(text) / 3.6 + 0.5)]
