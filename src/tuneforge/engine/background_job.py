"""The shell of a background job (`python -m tuneforge.engine.export|evaluate SPEC.json`): a log file and
events.jsonl next to SPEC.json, and exactly one final event — the job's own `completed`, or `failed` with an error a
user can read and a hint (the traceback goes to the log, never into the event)."""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from tuneforge.engine.errors import EngineError
from tuneforge.rundir import EventWriter
from tuneforge.schemas.config_errors import validation_problems
from tuneforge.schemas.events import EventType

log = logging.getLogger("tuneforge.job")


def run_job(argv: list[str] | None, module: str, log_name: str, what: str,
            work: Callable[[Path, EventWriter], None]) -> int:
    """Runs work(spec_file, events), which emits `started` and `completed`; returns the process exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(f"usage: python -m {module} SPEC.json", file=sys.stderr)
        return 2
    spec_file = Path(argv[0]).resolve()
    log_file = spec_file.parent / log_name
    _configure_logging(log_file)
    events = EventWriter(spec_file.parent / "events.jsonl")
    try:
        work(spec_file, events)
    except Exception as exc:  # one final event the user can read, never a bare traceback
        error, hint = _describe(exc, spec_file, what, log_file)
        log.error("failed: %s\nhint: %s", error, hint)
        events.emit(EventType.FAILED, error=error, hint=hint)
        return 2 if isinstance(exc, EngineError | ValueError | OSError) else 1
    return 0


def _describe(exc: Exception, spec_file: Path, what: str, log_file: Path) -> tuple[str, str]:
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        problems = "; ".join(map(str, validation_problems(exc)))
        return f"{spec_file}: {problems}", f"fix the listed fields of the {what} spec and start again"
    if isinstance(exc, EngineError):
        return str(exc), exc.hint or f"see {log_file}"
    log.error("unexpected error:\n%s", traceback.format_exc())
    return f"{type(exc).__name__}: {exc}", f"see {log_file} for the traceback"


def _configure_logging(log_file: Path) -> None:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler, logging.StreamHandler(sys.stderr)]
    root.setLevel(logging.INFO)
