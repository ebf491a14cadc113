"""What a stage module provides, and what the shared training flow hands it.

The flow in engine/training.py does everything stages have in common: tokenizer and template, model loading and
adapters, TrainingArguments, stop / rank sync / divergence guard callbacks, events, resume, final evaluation and
outputs. A stage module adds only what differs between training methods: the data it trains on, the Trainer that
trains it (Hugging Face's or TRL's) and the figures it reports at the end.

A stage module is a plain module (engine/stages/<stage>.py) with module-level names matching `StageModule`;
heavy imports (torch, transformers, TRL) go inside its functions, so listing the stages stays cheap. A module may
also set `MODEL_HEAD = "score"` to train a sequence classifier with one output (a reward model) instead of the
language-model head, and `PADDING_FREE = False` when its trainer pads batches (TRL's trainers: then attention is
plain SDPA rather than the variable-length kernel padding-free batches need).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from tuneforge.data.prepare import PreparedData
    from tuneforge.engine.precision import Precision
    from tuneforge.engine.trainer import TokenCounter
    from tuneforge.schemas.stages import Stage


@dataclass
class TrainerInputs:
    """Everything the shared flow has built by the time a stage makes its Trainer."""

    cfg: Any  # the TrainingConfig
    model: Any  # loaded, adapters applied
    tokenizer: Any
    args: Any  # transformers.TrainingArguments (a TRL stage builds its own *Config from these values)
    data: PreparedData  # what the stage's prepare_data returned
    counter: TokenCounter  # the callbacks read tokens seen / trained from it; the stage's trainer fills it
    precision: Precision
    callbacks: list[Any]  # stop, rank sync, divergence guard: pass them all to the Trainer
    config_dir: Path | None = None  # relative paths of the config (grader files, reward_model) start here
    completions_file: Path | None = None  # where sampling stages write their scored completions
    template: Any = None  # the chat template: its stop words end a sampled answer

    @property
    def has_eval(self) -> bool:
        return bool(self.data.eval)


class StageModule(Protocol):
    """The module-level interface of engine/stages/<stage>.py."""

    STAGE: Stage  # its row of the stage table (schemas.stages.STAGES); the file is named after it

    def prepare_data(self, cfg: Any, tokenizer: Any, template: Any, config_dir: Path | None) -> PreparedData:
        """Tokenised train / eval samples and their statistics; empty `train` is reported by the flow."""
        ...

    def build_trainer(self, inputs: TrainerInputs) -> Any:
        """A transformers.Trainer (or subclass) ready for train(), holding `inputs.callbacks`."""
        ...

    def extra_metrics(self, inputs: TrainerInputs, train_metrics: dict[str, Any]) -> dict[str, Any]:
        """Figures the stage adds to the final metrics after training (before the final evaluation)."""
        ...
