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
    if cfg.reward_model:
        problems += _reward_model_problems(Path(cfg.reward_model), config_dir)
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


def _reward_model_problems(path: Path, config_dir: Path | None) -> list[ConfigProblem]:
    """An rm run's output: a LoRA adapter trained with a score head, or a whole sequence-classification model."""
    import json

    if not path.is_absolute() and config_dir is not None:
        path = config_dir / path
    adapter, config = path / "adapter_config.json", path / "config.json"
    hint = "give the output folder of an rm run (stage rm)"
    try:
        if adapter.is_file():
            is_scorer = json.loads(adapter.read_text(encoding="utf-8")).get("task_type") == "SEQ_CLS"
        elif config.is_file():
            architectures = json.loads(config.read_text(encoding="utf-8")).get("architectures") or []
            is_scorer = any(str(name).endswith("ForSequenceClassification") for name in architectures)
        else:
            return [ConfigProblem("reward_model", f"no model at {path}; {hint}")]
    except (OSError, ValueError) as error:
        return [ConfigProblem("reward_model", f"{path} cannot be read ({error}); {hint}")]
    if not is_scorer:
        return [ConfigProblem("reward_model", f"{path} is a language model, not a reward model (no score head); "
                                              f"{hint}")]
    return []
