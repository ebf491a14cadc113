"""The sampling stages' (grpo, ppo) own checks: a reward to learn from, graders that exist and run here, and a batch
that splits into whole groups of sampled answers."""

from __future__ import annotations

from pathlib import Path

from tuneforge.graders.reward_specs import RewardSpecError, reward_graders
from tuneforge.schemas import ConfigProblem, TrainingConfig
from tuneforge.schemas.capabilities import SAMPLING_STAGES


def reward_problems(cfg: TrainingConfig, config_dir: Path | None, served: bool) -> list[ConfigProblem]:
    """`served`: planned by the server, which has already replaced stored grader names by the graders; a string
    left over names no stored grader (a file path is not read on the server's disk)."""
    if cfg.stage not in SAMPLING_STAGES:
        return []
    problems: list[ConfigProblem] = []
    if not cfg.rewards and not cfg.reward_model:
        problems.append(ConfigProblem("rewards", f"stage {cfg.stage} needs a reward to learn from: rewards (graders "
                                                 "with weights) or reward_model (the output of an rm run)"))
    left_over = [i for i, reward in enumerate(cfg.rewards or []) if isinstance(reward.grader, str)] if served else []
    for index in left_over:
        name = (cfg.rewards or [])[index].grader
        problems.append(ConfigProblem(f"rewards[{index}].grader", f"no stored grader is named {name!r}; create it "
                                      "first (graders page, `tuneforge graders create`) or give the grader inline"))
    if cfg.rewards and not left_over:
        try:
            reward_graders(cfg.rewards, config_dir)
        except RewardSpecError as error:
            problems += [ConfigProblem(field, reason) for field, reason in error.problems]
    if cfg.stage == "grpo":
        answers = cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps
        if answers % cfg.num_generations:
            problems.append(ConfigProblem("num_generations", (
                f"a step samples {answers} answers (per_device_train_batch_size × gradient_accumulation_steps), "
                f"which do not split into groups of {cfg.num_generations}; choose num_generations dividing {answers} "
                "or a batch that is a multiple of it")))
    return problems
