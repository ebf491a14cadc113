"""dpo: direct preference optimisation on chosen / rejected pairs, on TRL's DPOTrainer.

pref_loss sigmoid / hinge / ipo are TRL's losses against a reference model; for LoRA the reference is the base with
the adapter switched off (no second copy in memory). orpo and simpo need no reference model and are computed here
from the policy's average log-probabilities, as their papers define them. pref_ftx adds an SFT loss on the chosen
answers with that weight.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneforge.schemas.stages import stage_info

if TYPE_CHECKING:
    from tuneforge.data.prepare import PreparedData
    from tuneforge.engine.stages.base import TrainerInputs

STAGE = stage_info("dpo")
REFERENCE_FREE = ("orpo", "simpo")


def prepare_data(cfg: Any, tokenizer: Any, template: Any, config_dir: Path | None) -> PreparedData:
    from tuneforge.data.prepare import prepare_datasets

    return prepare_datasets(cfg, tokenizer, template, config_dir=config_dir)


def build_trainer(inputs: TrainerInputs) -> Any:
    from trl import DPOConfig

    from tuneforge.engine.stages._preference import PreferenceTrainer
    from tuneforge.engine.stages._trl import as_dataset, trl_config

    cfg = inputs.cfg
    losses, weights = ["sigmoid" if cfg.pref_loss in REFERENCE_FREE else cfg.pref_loss], [1.0]
    if cfg.pref_ftx:
        losses, weights = [*losses, "sft"], [*weights, cfg.pref_ftx]
    args = trl_config(DPOConfig, inputs.args, beta=cfg.pref_beta, loss_type=losses, loss_weights=weights,
                      max_length=None, padding_free=False)
    trainer = PreferenceTrainer(
        model=inputs.model, args=args, train_dataset=as_dataset(inputs.data.train),
        eval_dataset=as_dataset(inputs.data.eval) if inputs.has_eval else None,
        processing_class=inputs.tokenizer, callbacks=inputs.callbacks,
    )
    trainer.token_counter = inputs.counter
    trainer.reference_free = cfg.pref_loss if cfg.pref_loss in REFERENCE_FREE else None
    trainer.simpo_gamma, trainer.pref_ftx = cfg.simpo_gamma, cfg.pref_ftx
    return trainer


def extra_metrics(inputs: TrainerInputs, train_metrics: dict[str, Any]) -> dict[str, Any]:
    return {"tokens_seen": inputs.counter.tokens_seen, "trained_tokens": inputs.counter.trained_tokens}
