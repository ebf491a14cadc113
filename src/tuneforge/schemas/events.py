"""Events a worker appends to RUN_DIR/events.jsonl: the contract between the worker and the service.

Every event has `seq` (1, 2, 3, … in file order), `type` and `time` (unix seconds). Exactly one final event
(completed | failed | stopped) ends a run.
"""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    STARTED = "started"
    PROGRESS = "progress"
    EVAL = "eval"
    CHECKPOINT = "checkpoint"
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"


FINAL_EVENT_TYPES = frozenset({EventType.COMPLETED, EventType.FAILED, EventType.STOPPED})

# Fields each event type carries besides seq / type / time (documentation and a test keep them honest).
EVENT_FIELDS: dict[EventType, tuple[str, ...]] = {
    EventType.STARTED: ("pid", "total_steps", "num_train_samples", "num_eval_samples", "trainable_params",
                        "total_params", "device", "precision", "resumed_from"),
    EventType.PROGRESS: ("step", "total_steps", "epoch", "loss", "learning_rate", "grad_norm", "tokens_seen",
                         "trained_tokens", "tokens_per_second", "elapsed_s", "eta_s", "percentage"),
    EventType.EVAL: ("step", "epoch", "eval_loss", "perplexity"),
    EventType.CHECKPOINT: ("step", "path"),
    EventType.COMPLETED: ("step", "output_dir", "metrics"),
    EventType.FAILED: ("step", "error", "hint", "checkpoint"),
    EventType.STOPPED: ("step", "checkpoint"),
}

# An export job (tuneforge.engine.export) writes the same types with these fields.
EXPORT_EVENT_FIELDS: dict[EventType, tuple[str, ...]] = {
    EventType.STARTED: ("pid", "base_model", "output_dir"),
    EventType.PROGRESS: ("stage", "percentage", "message"),
    EventType.COMPLETED: ("output_dir", "files", "sizes"),
    EventType.FAILED: ("error", "hint"),
}
