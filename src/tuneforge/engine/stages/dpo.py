"""dpo: direct preference optimisation on chosen / rejected pairs, on TRL's DPOTrainer.

pref_loss sigmoid / hinge / ipo are TRL's losses against a reference model; for LoRA the reference is the base with
the adapter switched off (no second copy in memory). orpo and simpo need no reference model and are computed here
from the policy's average log-probabilities, as their papers define them. pref_ftx adds an SFT loss on the chosen
answers with that weight.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tuneforge.engine.stages._common import extra_metrics, prepare_data
from tuneforge.schemas.stages import stage_info

if TYPE_CHECKING:
    from tuneforge.engine.stages.base import TrainerInputs

__all__ = ["PADDING_FREE", "STAGE", "build_trainer", "extra_metrics", "prepare_data"]

STAGE = stage_info("dpo")
PADDING_FREE = False  # TRL pads its batches (its padding-free mode is off after a refactor)
REFERENCE_FREE = ("orpo", "simpo")


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
