"""The training stages as data: what each reads, how it batches, what it reports and whether the engine runs it.

Every package asks this table instead of keeping its own list: the data layer (which record kind a stage reads),
the planner (which stages this version can run), the estimate (paired sequences), the console (the stage choices
and the metrics to chart) and the engine (which module trains it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

RecordKind = Literal["text", "chat", "preference", "kto", "prompt"]


@dataclass(frozen=True)
class Stage:
    name: str
    record_kind: RecordKind  # the canonical record the stage's data turns into (data.records)
    packing_default: bool  # `packing` left unset means this
    engine_supported: bool  # the worker has a module for it (engine/stages/<name>.py)
    sequences_per_sample: int  # chosen + rejected (or completion + KL sample) are two sequences
    preference: bool  # trained against a reference or a reward: learning rates a tenth of SFT's
    metrics: tuple[str, ...]  # what its events report besides loss, lr and grad_norm (the console charts them)
    label_en: str
    label_zh: str


STAGES: dict[str, Stage] = {stage.name: stage for stage in (
    Stage("pt", "text", True, True, 1, False, ("eval_loss", "perplexity"),
          "continued pre-training on plain text", "预训练（纯文本继续训练）"),
    Stage("sft", "chat", False, True, 1, False, ("eval_loss", "perplexity"),
          "supervised fine-tuning", "指令监督微调"),
    Stage("rm", "preference", False, True, 2, False, ("accuracy", "margin", "mean_reward"),
          "reward model", "奖励模型训练"),
    Stage("dpo", "preference", False, True, 2, True,
          ("rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins"),
          "direct preference optimisation", "DPO 偏好优化"),
    Stage("kto", "kto", False, True, 2, True, ("rewards/chosen", "rewards/rejected", "rewards/margins", "kl"),
          "Kahneman-Tversky optimisation", "KTO 偏好优化"),
    Stage("ppo", "prompt", False, True, 1, True,
          ("reward", "reward_std", "kl", "value_loss", "completions/mean_length"),
          "reinforcement learning with a reward model (PPO)", "PPO 强化学习"),
    Stage("grpo", "prompt", False, True, 1, True, ("reward", "reward_std", "kl", "completions/mean_length"),
          "reinforcement learning with graders (GRPO)", "GRPO 强化学习（评分器奖励）"),
)}

STAGE_NAMES: tuple[str, ...] = tuple(STAGES)
SUPPORTED_STAGES: tuple[str, ...] = tuple(name for name, stage in STAGES.items() if stage.engine_supported)


def stage_info(name: str) -> Stage:
    """The stage's row; KeyError names the known stages."""
    try:
        return STAGES[name]
    except KeyError:
        raise KeyError(f"unknown stage {name!r}; known: {', '.join(STAGES)}") from None


def packs_by_default(stage: str, packing: bool | None) -> bool:
    """Whether samples are packed: the explicit setting, else the stage's default."""
    return stage_info(stage).packing_default if packing is None else packing
