"""Fields of the preference and reinforcement-learning stages that LLaMA-Factory lacks or names differently.

Generation settings (max_new_tokens, temperature, top_p, top_k) keep LLaMA-Factory's names and live with the eval
group; the stage fields LLaMA-Factory has (pref_beta, pref_loss, pref_ftx, kto_*_weight, reward_model) live in the
method group of training_fields.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tuneforge.schemas.training_fields import ArgsBase, arg

MAX_REWARDS = 8


class RewardSpec(BaseModel):
    """One reward of a GRPO / PPO run: a grader and its weight in the total reward."""

    model_config = ConfigDict(extra="forbid")

    grader: str | dict[str, Any] = Field(
        description="An OpenAI grader object inline, a path to a .json / .yaml grader file (relative to the config), "
                    "or the name of a grader stored in tuneforge.")
    weight: float = Field(1.0, ge=-100, le=100, description="Weight of this grader's score in the total reward.")

    @field_validator("grader")
    @classmethod
    def _grader_object(cls, value: str | dict[str, Any]) -> str | dict[str, Any]:
        if isinstance(value, str):
            if not value.strip() or len(value) > 4096:
                raise ValueError("a grader name or path is 1 to 4096 characters")
            return value
        from tuneforge.schemas.graders import GRADER_ADAPTER

        GRADER_ADAPTER.validate_python(value)
        return value


class ReinforcementArgs(ArgsBase):
    simpo_gamma: float = arg(
        0.5, group="method", advanced=True, ge=0, le=100,
        en="SimPO (pref_loss: simpo): the target margin between the chosen and rejected rewards.",
        zh="SimPO（pref_loss: simpo）中 chosen 与 rejected 奖励之间的目标间隔。", rec="0.5")
    num_generations: int = arg(
        4, group="method", advanced=True, ge=2, le=64,
        en="GRPO: answers sampled per prompt; each is scored against the others of its group.",
        zh="GRPO：每个提示采样的回答数；每个回答与同组其他回答比较得分。", rec="4–16")
    kl_coef: float | None = arg(
        None, group="method", advanced=True, ge=0, le=10,
        en="GRPO / PPO: weight of the KL penalty that keeps the policy near the starting model. Unset: 0 for GRPO "
           "(no reference model is kept), 0.05 for PPO.",
        zh="GRPO / PPO：约束策略贴近初始模型的 KL 惩罚权重。不填：GRPO 为 0（不保留参考模型），PPO 为 0.05。")
    grpo_loss: Literal["grpo", "dr_grpo", "dapo", "bnpo"] = arg(
        "dapo", group="method", advanced=True,
        en="GRPO loss: grpo (per-sequence average), dr_grpo (a constant normaliser, no length bias), dapo "
           "(per-token over the whole batch; default) or bnpo (per-token over the local batch).",
        zh="GRPO 损失：grpo（按序列平均）、dr_grpo（常数归一，无长度偏置）、dapo（按整批 token 归一，默认）、"
           "bnpo（按本地批 token 归一）。")
    rewards: list[RewardSpec] | None = arg(
        None, group="method", advanced=True, max_length=MAX_REWARDS,
        en="GRPO / PPO: the rewards, each a grader (inline OpenAI grader object, grader file or stored grader "
           "name) with a weight; the total reward is their weighted sum. A bare name or path means weight 1, so "
           "'exact_answer, number_only' names two stored graders; a JSON list gives weights.",
        zh="GRPO / PPO 的奖励：每项为一个评分器（内联 OpenAI 评分器对象、评分器文件或已保存的评分器名称）及其权重；"
           "总奖励为加权和。只写名称或路径时权重为 1，如 'exact_answer, number_only'；用 JSON 列表可指定权重。")

    @field_validator("rewards", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return reward_list(value)


def reward_list(value: Any) -> Any:
    """`rewards` as a list of {grader, weight}: a name or path alone is a reward of weight 1, and text is a JSON list
    or comma-separated names (what a form's text input sends). Anything else is left for validation to judge."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError as error:
                raise ValueError(f"not a valid JSON list of rewards ({error})") from None
        else:
            value = [part.strip() for part in text.split(",") if part.strip()]
    if isinstance(value, list):
        return [{"grader": item, "weight": 1.0} if isinstance(item, str) else item for item in value]
    return value
