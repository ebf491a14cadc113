"""What every stage does the same way: its data comes from the data layer by the stage's record kind, and its
token figures from the run's counter. Light on imports, like the stage modules themselves."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuneforge.data.prepare import PreparedData
    from tuneforge.engine.stages.base import TrainerInputs


def prepare_data(cfg: Any, tokenizer: Any, template: Any, config_dir: Path | None) -> PreparedData:
    """Records of the stage's kind (schemas.stages), tokenised with the run's template."""
    from tuneforge.data.prepare import prepare_datasets

    return prepare_datasets(cfg, tokenizer, template, config_dir=config_dir)


def extra_metrics(inputs: TrainerInputs, train_metrics: dict[str, Any]) -> dict[str, Any]:
    return {"tokens_seen": inputs.counter.tokens_seen, "trained_tokens": inputs.counter.trained_tokens}
