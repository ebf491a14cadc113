"""Reading a run's growing files for the task views: the newest sampled completions of a step (a bounded tail
of completions.jsonl, tolerant of a line still being written or a damaged one) and whole log lines."""

from __future__ import annotations

import heapq
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from tuneforge.service.views import MAX_SAMPLE_STEPS, MAX_STEP_SAMPLES, CompletionSample, completion_sample

COMPLETIONS_WINDOW_BYTES = 32 * 1024 * 1024  # the tail of completions.jsonl one getTaskSamples reads
MAX_COMPLETION_LINE = 256 * 1024  # bytes; a longer line is skipped


@dataclass
class CompletionScan:
    step: int | None  # the step asked for; None: the last one with samples (found while reading)
    steps: set[int] = field(default_factory=set)
    smallest: list[int] = field(default_factory=list)  # a heap of `steps`: the earliest is dropped past the cap
    samples: list[CompletionSample] = field(default_factory=list)
    total: int = 0
    skipped: int = 0
    partial: bool = False

    def add(self, sample: CompletionSample, follow_last: bool) -> None:
        if sample.step not in self.steps:
            if len(self.steps) >= MAX_SAMPLE_STEPS:
                if sample.step < self.smallest[0]:
                    return self._collect(sample, follow_last)
                self.steps.discard(heapq.heappop(self.smallest))
            self.steps.add(sample.step)
            heapq.heappush(self.smallest, sample.step)
        self._collect(sample, follow_last)

    def _collect(self, sample: CompletionSample, follow_last: bool) -> None:
        if follow_last and (self.step is None or sample.step > self.step):
            self.step, self.samples, self.total = sample.step, [], 0
        if sample.step == self.step:
            self.total += 1
            if len(self.samples) < MAX_STEP_SAMPLES:
                self.samples.append(sample)


def scan_completions(path: Path, step: int | None) -> CompletionScan:
    scan = CompletionScan(step)
    if not path.is_file():
        return scan
    with path.open("rb") as f:
        scan.partial = (start := f.seek(0, 2) - COMPLETIONS_WINDOW_BYTES) > 0
        if f.seek(max(0, start - 1)) and f.read(1) != b"\n":
            _skip_line(f)  # the rest of a line cut by the window's start
        while raw := f.readline(MAX_COMPLETION_LINE + 1):
            if not raw.endswith(b"\n"):
                if len(raw) <= MAX_COMPLETION_LINE:
                    break  # the last line is still being written
                scan.skipped += 1
                _skip_line(f)  # an over-long line
                continue
            try:  # ValueError: not JSON, not UTF-8, or an integer of over 4300 digits
                sample = completion_sample(json.loads(raw))
            except (ValueError, RecursionError):
                sample = None
            if sample is None:
                scan.skipped += 1
            else:
                scan.add(sample, follow_last=step is None)
    return scan


def _skip_line(f: BinaryIO) -> None:
    while (rest := f.readline(MAX_COMPLETION_LINE)) and not rest.endswith(b"\n"):
        pass


def read_lines(path: Path, start: int, end: int) -> tuple[list[str], int]:
    """Whole lines between byte offsets; a last line without its newline is left for the next read."""
    with path.open("rb") as f:
        f.seek(start)
        data = f.read(end - start)
    cut = data.rfind(b"\n") + 1
    return data[:cut].decode("utf-8", errors="replace").splitlines(), start + cut
