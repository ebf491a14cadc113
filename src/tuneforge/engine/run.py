"""The worker: `python -m tuneforge.engine.run RUN_DIR`.

Reads RUN_DIR/spec.json, trains, writes events.jsonl / trainer_log.jsonl / train.log / checkpoints/ in RUN_DIR and
the model to the output dir. Ends with exactly one final event: completed, failed (with the error and what to do)
or stopped (SIGTERM: finish the step, save a checkpoint, exit 0).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
from pathlib import Path

from tuneforge.rundir import EventWriter, RunDir
from tuneforge.schemas.events import EventType

log = logging.getLogger("tuneforge.worker")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def run_dir_argument(argv: list[str] | None, module: str) -> RunDir | None:
    """RUN_DIR from the command line, holding a spec; None (after saying why on stderr) otherwise."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(f"usage: python -m {module} RUN_DIR", file=sys.stderr)
        return None
    run_dir = RunDir(Path(argv[0]).resolve())
    if not run_dir.spec_file.is_file():
        print(f"error: {run_dir.spec_file} does not exist", file=sys.stderr)
        return None
    return run_dir


def main(argv: list[str] | None = None) -> int:
    run_dir = run_dir_argument(argv, "tuneforge.engine.run")
    if run_dir is None:
        return EXIT_BAD_INPUT
    rank = int(os.environ.get("RANK", "0"))  # torchrun: every rank trains, rank 0 alone reports
    configure_logging(run_dir, rank)
    from tuneforge.engine.callbacks import StopRequest

    stop = StopRequest(run_dir.stop_file)
    signal.signal(signal.SIGTERM, stop.request)
    events = EventWriter(run_dir.events_file) if rank == 0 else NullEventWriter()
    code = run_worker(run_dir, events, stop)
    if code == EXIT_OK:  # after a failure a peer may be gone: just exit
        _leave_process_group()
    return code


def _leave_process_group() -> None:
    """Under torchrun: leave the process group the Trainer joined (NCCL warns about a leak at exit otherwise)."""
    distributed = sys.modules.get("torch.distributed")
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        distributed.destroy_process_group()


class NullEventWriter:
    """The events of ranks other than 0: the run directory holds one report per run."""

    final_written = False

    def emit(self, event_type: EventType, **fields: object) -> dict:
        return {"type": str(event_type), **fields}


def run_worker(run_dir: RunDir, events: EventWriter, stop) -> int:
    from tuneforge.engine.errors import EngineError

    try:
        from tuneforge.engine.training import run_training

        outcome = run_training(run_dir, events, stop)
    except Exception as exc:  # every failure becomes one final event the user can read
        error, hint, code = _describe_failure(exc, EngineError)
        log.error("failed: %s%s", error, f"\nhint: {hint}" if hint else "")
        if code == EXIT_FAILED:
            log.debug("traceback:\n%s", traceback.format_exc())
        events.emit(EventType.FAILED, step=None, error=error, hint=hint, checkpoint=None)
        return code
    if outcome.status == "completed":
        events.emit(EventType.COMPLETED, step=outcome.step, output_dir=None, metrics=outcome.metrics)
    elif outcome.status == "stopped":
        log.info("stopped at step %d; checkpoint %s", outcome.step, outcome.checkpoint)
        events.emit(EventType.STOPPED, step=outcome.step, checkpoint=outcome.checkpoint)
    else:
        log.error("failed: %s\nhint: %s", outcome.error, outcome.hint)
        events.emit(EventType.FAILED, step=outcome.step, error=outcome.error, hint=outcome.hint,
                    checkpoint=outcome.checkpoint)
        return EXIT_FAILED
    return EXIT_OK


def _describe_failure(exc: Exception, engine_error: type) -> tuple[str, str | None, int]:
    from tuneforge.schemas import ConfigError

    if isinstance(exc, ConfigError):
        return str(exc), "fix the listed keys in the config and start again", EXIT_BAD_INPUT
    if isinstance(exc, engine_error):
        return str(exc), exc.hint, EXIT_BAD_INPUT
    try:
        from tuneforge.data.records import DatasetError
        from tuneforge.data.sources import DatasetConfigError, DatasetNotFound

        if isinstance(exc, DatasetError | DatasetNotFound | DatasetConfigError):
            return str(exc), "fix the dataset (file:line above) or its path and start again", EXIT_BAD_INPUT
    except ImportError:
        pass
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        return (f"out of memory: {exc}", "lower per_device_train_batch_size or cutoff_len, turn on "
                "gradient_checkpointing, or use LoRA / QLoRA", EXIT_FAILED)
    log.error("unexpected error:\n%s", traceback.format_exc())
    hint = "see train.log for the traceback"
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # a peer's failure reaches rank 0 as a broken collective
        hint += " and train.rank*.log: another rank may have failed first"
    return f"{type(exc).__name__}: {exc}", hint, EXIT_FAILED


def configure_logging(run_dir: RunDir, rank: int = 0) -> None:
    """Everything goes to RUN_DIR/train.log (and stderr), including transformers' own log lines."""
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")
    log_file = run_dir.log_file if rank == 0 else run_dir.path / f"train.rank{rank}.log"
    file_handler = logging.FileHandler(log_file, encoding="utf-8")
    file_handler.setFormatter(formatter)
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [file_handler, stream]
    root.setLevel(logging.INFO)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_default_handler()  # its lines reach train.log through the root logger instead
    hf_logging.enable_propagation()


if __name__ == "__main__":
    sys.exit(main())
