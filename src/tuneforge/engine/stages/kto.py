"""kto: Kahneman-Tversky optimisation on single answers labelled desirable or not, on TRL's KTOTrainer.

The reference model is the starting model (for LoRA, the base with the adapter switched off); the KL estimate pairs
each prompt with another sample's answer in the batch, so a batch needs at least two samples.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tuneforge.engine.stages._common import extra_metrics, prepare_data
from tuneforge.schemas.stages import stage_info

if TYPE_CHECKING:
    from tuneforge.engine.stages.base import TrainerInputs

__all__ = ["PADDING_FREE", "STAGE", "build_trainer", "extra_metrics", "prepare_data"]

STAGE = stage_info("kto")
PADDING_FREE = False  # TRL pads its batches (its padding-free mode is off after a refactor)


def build_trainer(inputs: TrainerInputs) -> Any:
    from trl import KTOConfig, KTOTrainer

    from tuneforge.engine.stages._trl import CountsTokens, as_dataset, trl_config

    class ForgeKTOTrainer(CountsTokens, KTOTrainer):
        def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, name: str) -> Any:
            """Tokenised already; only the KL term's mismatched answers are added: each batch's answers rotated by
            one, so every prompt meets another sample's answer (TRL's own construction)."""
            if not self.calculate_KL:
                return dataset
            return dataset.map(_rotate_answers, batched=True, batch_size=args.per_device_train_batch_size)

    cfg = inputs.cfg
    # The KL estimate pairs each sample with its neighbour in a fixed-order batch, so TRL reads the data in order:
    # it is shuffled once here, by the run's seed.
    args = trl_config(KTOConfig, inputs.args, beta=cfg.pref_beta, desirable_weight=cfg.kto_chosen_weight,
                      undesirable_weight=cfg.kto_rejected_weight, max_length=None,
                      train_sampling_strategy="sequential")
    trainer = ForgeKTOTrainer(
        model=inputs.model, args=args, train_dataset=as_dataset(inputs.data.train).shuffle(seed=cfg.seed),
        eval_dataset=as_dataset(inputs.data.eval) if inputs.has_eval else None,
        processing_class=inputs.tokenizer, callbacks=inputs.callbacks,
    )
    trainer.token_counter = inputs.counter
    return trainer


def _rotate_answers(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
    answers = batch["completion_ids"]
    return {**batch, "KL_completion_ids": answers[-1:] + answers[:-1]}
