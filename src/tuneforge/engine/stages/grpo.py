"""grpo: group relative policy optimisation on TRL's GRPOTrainer, rewarded by graders (and / or a reward model).

Each prompt gets num_generations sampled answers; each answer's advantage is its total reward (the weighted sum of
the rewards) against its group's mean. Prompts are rendered with the run's template, so sampling starts exactly where
a chat with the trained model would; the graders read the prompt's dataset row as `item`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tuneforge.engine.stages._common import extra_metrics, prepare_data
from tuneforge.schemas.stages import stage_info

if TYPE_CHECKING:
    from tuneforge.engine.stages.base import TrainerInputs

__all__ = ["PADDING_FREE", "STAGE", "build_trainer", "extra_metrics", "prepare_data"]

STAGE = stage_info("grpo")
PADDING_FREE = False  # TRL pads its batches (its padding-free mode is off after a refactor)


def build_trainer(inputs: TrainerInputs) -> Any:
    from trl import GRPOConfig, GRPOTrainer

    from tuneforge.engine.rewards import load_reward_model, reward_functions
    from tuneforge.engine.stages._trl import CountsTokens, as_dataset, trl_config
    from tuneforge.graders.reward_specs import reward_graders

    class ForgeGRPOTrainer(CountsTokens, GRPOTrainer):
        def _tokenize_prompts(self, prompts: list[Any]) -> Any:
            """The prompt text is the template's rendering, special tokens included: encode it as is."""
            if prompts and isinstance(prompts[0], str):
                return [self.processing_class.encode(p, add_special_tokens=False) for p in prompts], None, {}
            return super()._tokenize_prompts(prompts)

    cfg = inputs.cfg
    scorer = None
    if cfg.reward_model:
        scorer = (load_reward_model(cfg, inputs.config_dir, inputs.precision), inputs.tokenizer)
    functions, weights = reward_functions(reward_graders(cfg.rewards, inputs.config_dir), scorer,
                                          inputs.completions_file if inputs.args.process_index == 0 else None)
    args = trl_config(
        GRPOConfig, inputs.args, num_generations=cfg.num_generations, max_completion_length=cfg.max_new_tokens,
        temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k, beta=cfg.kl_coef or 0.0,
        loss_type=cfg.grpo_loss, reward_weights=weights,
        # Training turns the model's KV cache off; sampling without it recomputes every prefix (~15x slower).
        generation_kwargs={"use_cache": True},
    )
    trainer = ForgeGRPOTrainer(
        model=inputs.model, reward_funcs=functions, args=args, train_dataset=as_dataset(inputs.data.train),
        eval_dataset=as_dataset(inputs.data.eval) if inputs.has_eval else None,
        processing_class=inputs.tokenizer, callbacks=inputs.callbacks,
    )
    trainer.token_counter = inputs.counter
    return trainer
