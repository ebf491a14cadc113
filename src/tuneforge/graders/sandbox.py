"""Running a python grader's `grade(sample, item)` on a batch of samples in a sandboxed subprocess.

One process grades the whole batch in order and streams one result line per sample (an interpreter start per
sample would cost more than most graders). The parent holds the clock: each sample gets `limits.seconds` of wall
time from the previous result; past that the whole process group is killed, that sample scores 0 with the reason,
and a fresh process carries on with the samples after it. A process that dies (CPU limit, a crash, `os._exit`)
costs the sample it was on the same way. The isolation itself is `sandbox_child.py`'s; when it cannot be set up,
nothing runs and every sample scores 0 with "sandbox unavailable: …" — there is no unsandboxed fallback.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from tuneforge.graders.interface import GradeResult, SandboxLimits

CHILD_SCRIPT = Path(__file__).with_name("sandbox_child.py")
STARTUP_S = 30.0  # interpreter start and isolation: generous, so a loaded machine is not mistaken for a broken one
FILE_MB = 16  # largest file (and log) the grader may write
LINE_MAX = 64 * 1024  # one result line; a longer one is not ours
STDERR_KEPT = 2000  # characters of the grader's stderr kept with a crash


@dataclass(frozen=True)
class _Case:
    index: int
    sample: Mapping[str, Any]
    item: Mapping[str, Any]


def run_python_grader(source: str, samples: Sequence[Mapping[str, Any]], items: Sequence[Mapping[str, Any]],
                      limits: SandboxLimits) -> list[GradeResult]:
    """One GradeResult per sample, in order; failures are 0 with a reason, never an exception."""
    if not sys.platform.startswith("linux"):
        reason = "sandbox unavailable: the python grader sandbox needs Linux namespaces"
        return [GradeResult(0.0, reason=reason) for _ in samples]
    results: dict[int, GradeResult] = {}
    pending = [_Case(i, sample, item) for i, (sample, item) in enumerate(zip(samples, items, strict=True))]
    while pending:  # every pass settles at least the sample it stopped on, so this ends
        results.update(_run_process(source, pending, limits))
        pending = [case for case in pending if case.index not in results]
    return [results[i] for i in range(len(samples))]


@cache
def sandbox_problem() -> str | None:
    """Why python graders cannot run on this host ("sandbox unavailable: …"), or None; checked once a process."""
    probe = run_python_grader("def grade(sample, item):\n    return 1.0\n", [{}], [{}], SandboxLimits(seconds=30))
    return probe[0].reason if probe[0].reason and probe[0].reason.startswith("sandbox unavailable") else None


def _run_process(source: str, cases: list[_Case], limits: SandboxLimits) -> dict[int, GradeResult]:
    """Grade `cases` in order in one sandbox process until they are done or one fails; the results it settled."""
    with tempfile.TemporaryDirectory(prefix="tuneforge-grader-", ignore_cleanup_errors=True) as workdir:
        input_path = Path(workdir, "input.jsonl")
        _write_input(input_path, source, cases, limits)
        with open(Path(workdir, "stderr.log"), "wb") as stderr:
            process = subprocess.Popen(  # an argument list, never a shell; -I -S: no environment, no site-packages
                [sys.executable, "-I", "-S", str(CHILD_SCRIPT), str(input_path)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, cwd=workdir,
                env={"LC_ALL": "C.UTF-8", "HOME": workdir, "TMPDIR": workdir}, start_new_session=True)
        try:
            return _follow(process, cases, limits, Path(workdir, "stderr.log"))
        finally:
            _kill_group(process)


def _follow(process: subprocess.Popen[bytes], cases: list[_Case], limits: SandboxLimits,
            stderr: Path) -> dict[int, GradeResult]:
    assert process.stdout is not None
    reader = _LineReader(process.stdout.fileno())
    try:
        return _settle(process, reader, cases, limits, stderr)
    finally:
        reader.selector.close()


def _settle(process: subprocess.Popen[bytes], reader: _LineReader, cases: list[_Case], limits: SandboxLimits,
            stderr: Path) -> dict[int, GradeResult]:
    everyone = [case.index for case in cases]

    started = reader.read(STARTUP_S)
    if not isinstance(started, dict) or started.get("event") != "sandboxed":
        why = started.get("error") if isinstance(started, dict) and started.get("event") == "fatal" else \
            _ending(process, started, STARTUP_S, stderr)
        return _all(everyone, f"sandbox unavailable: {why}")
    loaded = reader.read(limits.seconds)
    if not isinstance(loaded, dict) or loaded.get("event") != "loaded":
        why = loaded.get("error") if isinstance(loaded, dict) and loaded.get("event") == "load_failed" else \
            _ending(process, loaded, limits.seconds, stderr)
        return _all(everyone, f"the grader source failed to load: {why}")

    results: dict[int, GradeResult] = {}
    for case in cases:
        line = reader.read(limits.seconds)
        if not isinstance(line, dict) or line.get("index") != case.index:
            log = _tail(stderr) if line is _EOF else ""
            details = {"stderr": log} if log else {}
            results[case.index] = GradeResult(0.0, reason=_ending(process, line, limits.seconds, stderr),
                                              details=details)
            return results  # the process is unusable now; the caller starts a fresh one for the rest
        score = line.get("score")
        # checked here too: the line comes from a process that ran user code (json reads NaN and Infinity)
        if isinstance(score, int | float) and not isinstance(score, bool) and math.isfinite(score):
            results[case.index] = GradeResult(float(score))
        else:
            results[case.index] = GradeResult(0.0, reason=str(line.get("error", "no score reported"))[:1000])
    return results


def _ending(process: subprocess.Popen[bytes], line: object, seconds: float, stderr: Path) -> str:
    """What stopped the process from answering, in words."""
    if line is _TIMEOUT:
        return f"timed out after {seconds:g} s (wall clock); the process was killed"
    if line is _EOF:
        try:
            code = process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "the grader process closed its output without exiting"
        return _exit_reason(code, stderr)
    return f"sandbox protocol error: unexpected output {str(line)[:200]!r}"


def _exit_reason(code: int, stderr: Path) -> str:
    if code < 0:
        signal_number = -code
        if signal_number == signal.SIGXCPU:
            return "CPU time limit exceeded; the process was killed"
        if signal_number == signal.SIGKILL:
            return "the grader process was killed (SIGKILL), most likely for using too much memory"
        name = signal.Signals(signal_number).name if signal_number in signal.valid_signals() else signal_number
        return f"the grader process crashed ({name})"
    last = _tail(stderr).strip().splitlines()
    return f"the grader process exited with code {code}" + (f": {last[-1][:300]}" if last else "")


def _write_input(path: Path, source: str, cases: list[_Case], limits: SandboxLimits) -> None:
    header = {"source": source, "seconds": limits.seconds, "memory_mb": limits.memory_mb, "file_mb": FILE_MB}
    with open(path, "w", encoding="utf-8") as out:
        out.write(json.dumps(header) + "\n")
        for case in cases:  # default=str: a dataset value JSON cannot hold reaches the grader as its text
            out.write(json.dumps({"index": case.index, "sample": case.sample, "item": case.item}, default=str) + "\n")


def _all(indices: list[int], reason: str) -> dict[int, GradeResult]:
    return {index: GradeResult(0.0, reason=reason) for index in indices}


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill the sandbox and anything it started (it leads its own session), then reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    if process.stdout is not None:
        process.stdout.close()


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as log:
            log.seek(max(0, path.stat().st_size - STDERR_KEPT))
            return log.read().decode("utf-8", "replace")
    except OSError:
        return ""


_TIMEOUT = object()
_EOF = object()


class _LineReader:
    """JSON lines from a pipe, each within a deadline; lines are bounded in size."""

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)
        self.fd = fd
        self.buffer = bytearray()
        self.closed = False
        self.selector = selectors.DefaultSelector()
        self.selector.register(fd, selectors.EVENT_READ)

    def read(self, seconds: float) -> object:
        """The next line's JSON value, or _TIMEOUT, or _EOF; a line that is not JSON comes back as its text."""
        deadline = time.monotonic() + seconds
        while b"\n" not in self.buffer:
            if len(self.buffer) > LINE_MAX:
                return f"<a line over {LINE_MAX} bytes>"
            if self.closed:
                return _EOF
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return _TIMEOUT
            if self.selector.select(remaining):
                chunk = os.read(self.fd, 65536)
                self.closed = not chunk
                self.buffer += chunk
        line, _, rest = bytes(self.buffer).partition(b"\n")
        self.buffer = bytearray(rest)
        try:
            return json.loads(line)
        except ValueError:
            return line.decode("utf-8", "replace")
