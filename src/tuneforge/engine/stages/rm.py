"""rm: a reward model trained on chosen / rejected pairs (Bradley-Terry loss), on TRL's RewardTrainer.

The model is the base with a scalar score head (a sequence classifier with one label); with LoRA the head is trained
in full beside the adapter and saved with it. Its output scores answers as a PPO or GRPO reward (reward_model).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tuneforge.engine.stages._common import extra_metrics, prepare_data
from tuneforge.schemas.stages import stage_info

if TYPE_CHECKING:
    from tuneforge.engine.stages.base import TrainerInputs

__all__ = ["PADDING_FREE", "STAGE", "build_trainer", "extra_metrics", "prepare_data"]

STAGE = stage_info("rm")
PADDING_FREE = False  # TRL pads its batches (its padding-free mode is off after a refactor)
MODEL_HEAD = "score"  # the flow loads a sequence classifier with one output instead of the language-model head


def build_trainer(inputs: TrainerInputs) -> Any:
    from trl import RewardConfig, RewardTrainer

    from tuneforge.engine.stages._trl import CountsTokens, ReadyDataset, as_dataset, trl_config

    class ForgeRewardTrainer(ReadyDataset, CountsTokens, RewardTrainer):
        pass

    args = trl_config(RewardConfig, inputs.args, max_length=None, center_rewards_coefficient=None)
    trainer = ForgeRewardTrainer(
        model=inputs.model, args=args, train_dataset=as_dataset(_full_sequences(inputs.data.train)),
        eval_dataset=as_dataset(_full_sequences(inputs.data.eval)) if inputs.has_eval else None,
        processing_class=inputs.tokenizer, callbacks=inputs.callbacks,
    )
    trainer.token_counter = inputs.counter
    return trainer


def _full_sequences(pairs: list[Any]) -> list[dict[str, list[int]]]:
    """The reward model reads whole conversations: prompt + chosen and prompt + rejected."""
    return [{"chosen_ids": p.prompt_ids + p.chosen_ids, "rejected_ids": p.prompt_ids + p.rejected_ids}
            for p in pairs]
