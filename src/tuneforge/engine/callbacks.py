"""Trainer callbacks: progress / eval / checkpoint events, LLaMA-Factory's trainer_log.jsonl, graceful stop on
SIGTERM and the divergence guard."""

from __future__ import annotations

import json
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from transformers import TrainerCallback

from tuneforge.engine.trainer import TokenCounter
from tuneforge.rundir import EventWriter
from tuneforge.schemas.events import EventType

log = logging.getLogger(__name__)


class RunEventsCallback(TrainerCallback):
    """Writes what a user watches: step, loss, lr, tokens, tokens/s, ETA, eval loss, checkpoints."""

    def __init__(self, events: EventWriter, trainer_log: Path, counter: TokenCounter, is_main: bool = True) -> None:
        self.events = events
        self.trainer_log = trainer_log
        self.counter = counter
        self.is_main = is_main
        self.start_time = time.monotonic()
        self.start_step = 0
        self.start_tokens = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.start_time = time.monotonic()
        self.start_step = state.global_step  # > 0 when resuming: ETA counts only this session's speed
        self.start_tokens = self.counter.tokens_seen

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # The last step always logs: a run shorter than logging_steps (or stopped between two logs) still reports
        # its loss and tokens. Every rank sets it: logging gathers the loss across ranks.
        if control.should_training_stop:
            control.should_log = True

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kw: Any) -> None:
        if not self.is_main or not logs:
            return
        step, total = state.global_step, max(state.max_steps, 1)
        elapsed = time.monotonic() - self.start_time
        done = step - self.start_step
        eta = elapsed / done * (total - step) if done > 0 else None
        tokens_per_s = (self.counter.tokens_seen - self.start_tokens) / elapsed if elapsed > 0 else 0.0
        epoch = round(state.epoch or 0.0, 4)
        if "loss" in logs:
            log.info("%s", _step_line(step, total, logs, tokens_per_s, eta))
            self.events.emit(
                EventType.PROGRESS, step=step, total_steps=total, epoch=epoch, loss=_finite(logs["loss"]),
                learning_rate=logs.get("learning_rate"), grad_norm=_finite(logs.get("grad_norm")),
                tokens_seen=self.counter.tokens_seen, trained_tokens=self.counter.trained_tokens,
                tokens_per_second=round(tokens_per_s, 2), elapsed_s=round(elapsed, 2),
                eta_s=round(eta, 1) if eta is not None else None, percentage=round(100 * step / total, 2),
                **_stage_metrics(logs, train=True),
            )
        if "eval_loss" in logs:
            log.info("eval step %d/%d eval_loss %.4f", step, total, logs["eval_loss"])
            self.events.emit(EventType.EVAL, step=step, epoch=epoch, eval_loss=logs["eval_loss"],
                             perplexity=logs.get("eval_perplexity"), **_stage_metrics(logs, train=False))
        if "loss" in logs or "eval_loss" in logs:
            self._append_trainer_log(step, total, epoch, logs, elapsed, eta, tokens_per_s)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.is_main:
            path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            self.events.emit(EventType.CHECKPOINT, step=state.global_step, path=str(path))

    def _append_trainer_log(self, step: int, total: int, epoch: float, logs: dict[str, float], elapsed: float,
                            eta: float | None, tokens_per_s: float) -> None:
        """One line per log in LLaMA-Factory's field names (its plotting and users' scripts read these)."""
        record = {
            "current_steps": step, "total_steps": total, "loss": logs.get("loss"), "eval_loss": logs.get("eval_loss"),
            "lr": logs.get("learning_rate"), "epoch": epoch, "percentage": round(100 * step / total, 2),
            "elapsed_time": _hms(elapsed), "remaining_time": _hms(eta) if eta is not None else "",
            "throughput": round(tokens_per_s, 2), "total_tokens": self.counter.tokens_seen,
            # LLaMA-Factory's names for the preference and RL stages' headline figures
            "reward": logs.get("reward"), "accuracy": logs.get("rewards/accuracies", logs.get("accuracy")),
        }
        with self.trainer_log.open("a", encoding="utf-8") as f:
            f.write(json.dumps({k: v for k, v in record.items() if v is not None}) + "\n")


# Log keys every run has (already fields of the events); a stage's own figures are the rest.
_COMMON_LOGS = frozenset({"loss", "learning_rate", "grad_norm", "epoch", "num_tokens", "total_flos", "train_loss",
                          "eval_loss"})
_RUNTIME = ("_runtime", "_samples_per_second", "_steps_per_second")
MAX_STAGE_METRICS = 32


def _stage_metrics(logs: dict[str, float], train: bool) -> dict[str, Any]:
    """The stage's own figures of a log (rewards/margins, kl, reward …) for the event's `metrics` field: finite
    numbers only; eval ones keep their eval_ prefix."""
    metrics = {}
    for key, value in logs.items():
        if key in _COMMON_LOGS or key.endswith(_RUNTIME) or key.startswith("eval_") != (not train):
            continue
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            metrics[key] = round(float(value), 6)
    return {"metrics": dict(list(metrics.items())[:MAX_STAGE_METRICS])} if metrics else {}


class StopRequest:
    """Set by the SIGTERM handler, or by the service writing the run directory's STOP file (how executors without
    a signal path, a Ray or Kubernetes worker on another node, ask); read at the end of each step."""

    def __init__(self, stop_file: Path | None = None) -> None:
        self._requested = False
        self.stop_file = stop_file

    @property
    def requested(self) -> bool:
        if not self._requested and self.stop_file is not None and self.stop_file.exists():
            self._requested = True
        return self._requested

    @requested.setter
    def requested(self, value: bool) -> None:
        self._requested = value

    def request(self, *_: Any) -> None:
        self._requested = True


class RankSync(TrainerCallback):
    """Under torchrun: one all-reduce at every step end carries each rank's stop request and its new tokens.

    Every rank then stops at the same step (a rank that leaves early hangs the others in their next collective),
    and the token counts rank 0 reports are the sums over all ranks, not its own shard. Read `requested` as the
    agreed decision; it changes only inside `agree()`, never between two callbacks of one step.
    """

    def __init__(self, local: StopRequest, counter: TokenCounter) -> None:
        self.local = local
        self.counter = counter
        self.requested = False
        self._synced = (0, 0)  # global tokens_seen, trained_tokens after the last agreement

    def agree(self, device: Any) -> bool:
        """Collective: every rank must call it at the same point of the run (device: NCCL reduces GPU tensors)."""
        seen, trained = self._synced
        values = torch.tensor([int(self.local.requested), self.counter.tokens_seen - seen,
                               self.counter.trained_tokens - trained], dtype=torch.int64, device=device)
        dist.all_reduce(values)
        self.counter.tokens_seen = seen + int(values[1])
        self.counter.trained_tokens = trained + int(values[2])
        self._synced = (self.counter.tokens_seen, self.counter.trained_tokens)
        self.requested = self.requested or bool(values[0])
        return self.requested

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.agree(args.device)


class GracefulStopCallback(TrainerCallback):
    """Saves and stops at the end of the step in which `stop.requested` became true (a StopRequest or a RankSync)."""

    def __init__(self, stop: StopRequest | RankSync) -> None:
        self.stop = stop
        self.stopped_at: int | None = None

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.stop.requested and self.stopped_at is None:
            self.stopped_at = state.global_step
            control.should_save = True
            control.should_training_stop = True
            log.info("stop requested: saving a checkpoint at step %d and stopping", state.global_step)


class DivergenceGuard(TrainerCallback):
    """Stops a run whose loss or gradients are not finite, or whose loss stays far above its running level, and
    keeps the last good weights.

    A loss logged at step s was computed with the weights of earlier steps, so the weights of a logging step are
    confirmed good only by the next logged loss. The guard keeps a CPU copy of the trainable weights of the last
    logging step (pending) and of the last confirmed one; on a trip the run saves and reports the confirmed copy,
    never the diverged weights. For full fine-tuning the copies cost host memory of about twice the model's weights.
    """

    def __init__(self, counter: TokenCounter, factor: float = 3.0, patience: int = 3, warmup_logs: int = 3,
                 keep_weights: bool = True) -> None:
        self.counter = counter
        self.factor = factor
        self.patience = patience
        self.warmup_logs = warmup_logs
        self.keep_weights = keep_weights  # under torchrun only rank 0 keeps copies: it alone saves
        self.history: deque[float] = deque(maxlen=20)
        self.high_streak = 0
        self.reason: str | None = None
        self.pending: WeightsCopy | None = None
        self.confirmed: WeightsCopy | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self.confirmed = self._copy(model, state.global_step)  # the starting weights are good by definition
        self.pending = None

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.counter.bad_gradient_steps and self.reason is None:
            step = self.counter.bad_gradient_steps[0]
            self._trip(control, f"the gradients became non-finite (NaN/inf) at step {step}")

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None,
               model: Any = None, **kw: Any) -> None:
        if self.reason is not None or not logs or "loss" not in logs:
            return
        loss = logs["loss"]
        if not math.isfinite(loss) or not math.isfinite(logs.get("grad_norm", 0.0) or 0.0):
            self._trip(control, f"the loss or gradient norm became non-finite at step {state.global_step}")
            return
        level = self._level()
        if level is not None and math.isfinite(self.factor) and loss > self.factor * level:
            self.pending = None  # its weights produced part of this high loss
            self.high_streak += 1
            if self.high_streak >= self.patience:
                self._trip(control, f"the loss stayed above {self.factor:g}× its running level ({level:.3f}) for "
                                    f"{self.patience} logging steps (now {loss:.3f} at step {state.global_step})")
            return
        self.high_streak = 0
        self.history.append(loss)
        self.confirmed = self.pending or self.confirmed
        self.pending = self._copy(model, state.global_step)

    def _level(self) -> float | None:
        """The running median; while it warms up, the highest loss so far (a jump from the first losses counts)."""
        if not self.history:
            return None
        if len(self.history) < self.warmup_logs:
            return max(self.history)
        return sorted(self.history)[len(self.history) // 2]

    def _trip(self, control: Any, reason: str) -> None:
        self.reason = reason
        control.should_save = False  # the current weights are the diverged ones; save_last_good keeps the good
        control.should_training_stop = True
        log.error("divergence guard: %s", reason)

    def _copy(self, model: Any, step: int) -> WeightsCopy | None:
        if not self.keep_weights or model is None:
            return None
        weights = {name: param.detach().to("cpu", copy=True)
                   for name, param in model.named_parameters() if param.requires_grad}
        return WeightsCopy(step, weights)

    def save_last_good(self, trainer: Any, checkpoints_dir: Path) -> str | None:
        """Put the confirmed weights back into the model and save them as checkpoint-N (N: their step), resumable:
        a resume from it starts a fresh optimizer, which a diverged run's moments would only mislead."""
        good = self.confirmed
        if good is None:
            return None
        for name, param in trainer.model.named_parameters():
            if name in good.weights:
                param.data.copy_(good.weights[name])
        target = checkpoints_dir / f"checkpoint-{good.step}"
        if not (target / "trainer_state.json").is_file():  # a periodic checkpoint of that step holds the same
            trainer.save_model(str(target))
            history = [entry for entry in trainer.state.log_history if entry.get("step", 0) <= good.step]
            replace(trainer.state, global_step=good.step, log_history=history).save_to_json(
                str(target / "trainer_state.json"))
        later = sorted(p.name for p in checkpoints_dir.glob("checkpoint-*")
                       if p.name.split("-")[-1].isdigit() and int(p.name.split("-")[-1]) > good.step)
        if later:
            log.warning("divergence guard: %s were saved after the last good step %d and may hold diverged weights",
                        ", ".join(later), good.step)
        log.info("divergence guard: kept the last good weights (step %d) in %s", good.step, target)
        return str(target)


@dataclass
class WeightsCopy:
    step: int
    weights: dict[str, torch.Tensor]


def _step_line(step: int, total: int, logs: dict[str, float], tokens_per_s: float, eta: float | None) -> str:
    """One human-readable line per log for train.log (what `tuneforge tasks logs -f` follows)."""
    lr, grad_norm = logs.get("learning_rate"), logs.get("grad_norm")
    return " ".join([
        f"step {step}/{total}", f"loss {logs['loss']:.4f}",
        f"lr {lr:.1e}" if lr is not None else "lr -",
        f"grad_norm {grad_norm:.2f}" if grad_norm is not None else "grad_norm -",
        f"tokens/s {tokens_per_s:.0f}", f"eta {_hms(eta) if eta is not None else '-'}",
    ])


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    return value if math.isfinite(value) else None


def _hms(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
