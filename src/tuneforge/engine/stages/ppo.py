"""ppo: proximal policy optimisation with a value head, rewarded by a reward model (an rm run's output) and / or
graders, with a per-token KL penalty towards the starting model (kl_coef, default 0.05).

The trainer is tuneforge's own (engine/stages/_ppo.py): TRL no longer has one. Prompts are rendered with the run's
template, answers sampled with max_new_tokens / temperature / top_p / top_k, and every answer with its scores goes
to completions.jsonl as for GRPO.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tuneforge.engine.stages._common import extra_metrics, prepare_data
from tuneforge.schemas.stages import stage_info

if TYPE_CHECKING:
    from tuneforge.engine.stages.base import TrainerInputs

__all__ = ["PADDING_FREE", "STAGE", "build_trainer", "extra_metrics", "prepare_data"]

STAGE = stage_info("ppo")
PADDING_FREE = False  # prompts are left-padded for sampling
DEFAULT_KL_COEF = 0.05


def build_trainer(inputs: TrainerInputs) -> Any:
    from tuneforge.engine.outputs import stop_token_ids
    from tuneforge.engine.rewards import load_reward_model, reward_functions
    from tuneforge.engine.stages._ppo import PPOTrainer, PromptCollator
    from tuneforge.engine.stages._trl import as_dataset
    from tuneforge.graders.reward_specs import reward_graders

    cfg, tokenizer = inputs.cfg, inputs.tokenizer
    scorer = (load_reward_model(cfg, inputs.config_dir, inputs.precision), tokenizer) if cfg.reward_model else None
    functions, weights = reward_functions(reward_graders(cfg.rewards, inputs.config_dir), scorer,
                                          inputs.completions_file if inputs.args.process_index == 0 else None)
    generation = {"max_new_tokens": cfg.max_new_tokens, "temperature": cfg.temperature, "top_p": cfg.top_p,
                  "top_k": cfg.top_k, "pad_token_id": tokenizer.pad_token_id,
                  "eos_token_id": stop_token_ids(tokenizer, inputs.template) if inputs.template
                  else [tokenizer.eos_token_id]}
    return PPOTrainer(
        model=inputs.model, args=inputs.args, train_dataset=as_dataset(inputs.data.train),
        data_collator=PromptCollator(tokenizer.pad_token_id), processing_class=tokenizer,
        callbacks=inputs.callbacks, rewards=functions, reward_weights=weights, generation=generation,
        kl_coef=DEFAULT_KL_COEF if cfg.kl_coef is None else cfg.kl_coef, token_counter=inputs.counter,
    )
