"""The rewards of a GRPO / PPO run as functions of sampled completions: graders (the same `grade_samples` an
evaluation uses, so a sample gets the same score in both) and a reward model from an rm run.

Every batch's completions, with each reward's score and the reason of a failed grade, go to the run directory's
completions.jsonl, so the console can show what the policy wrote at a chosen step and how it was scored.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuneforge.graders import SandboxLimits, grade_samples
from tuneforge.graders.reward_specs import RewardGrader

log = logging.getLogger(__name__)
MAX_LOGGED_PER_STEP = 64
MAX_LOGGED_CHARS = 4000


class CompletionsLog:
    """Collects each reward's scores of one batch; when the last reward has scored it, writes the batch's lines."""

    def __init__(self, path: Path | None, names: list[str]) -> None:
        self.path, self.names = path, names
        self.scores: dict[str, list[float]] = {}
        self.reasons: dict[str, list[str | None]] = {}
        self.logged_at: dict[int, int] = {}

    def add(self, name: str, scores: list[float], reasons: list[str | None], batch: dict[str, Any]) -> None:
        self.scores[name], self.reasons[name] = scores, reasons
        if len(self.scores) == len(self.names):
            self._write(batch)
            self.scores, self.reasons = {}, {}

    def _write(self, batch: dict[str, Any]) -> None:
        if self.path is None:
            return
        step = int(batch["step"])
        room = MAX_LOGGED_PER_STEP - self.logged_at.get(step, 0)
        lines = []
        for index in range(min(room, len(batch["prompts"]))):
            scores = {name: self.scores[name][index] for name in self.names}
            reasons = {name: why for name in self.names if (why := self.reasons[name][index])}
            lines.append(json.dumps({
                "step": step, "prompt": batch["prompts"][index][-MAX_LOGGED_CHARS:],
                "completion": batch["completions"][index][:MAX_LOGGED_CHARS],
                "reward": sum(scores[name] * batch["weights"][name] for name in self.names),
                "scores": scores, "reasons": reasons,
            }, ensure_ascii=False))
        self.logged_at[step] = self.logged_at.get(step, 0) + len(lines)
        if lines:
            with self.path.open("a", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")


def reward_functions(graders: list[RewardGrader], reward_model: tuple[Any, Any] | None,
                     completions_file: Path | None, limits: SandboxLimits | None = None
                     ) -> tuple[list[Callable[..., list[float]]], list[float]]:
    """TRL reward functions (named after their reward, the metric rewards/<name>/mean) and their weights.

    `reward_model` is (model, tokenizer) of an rm run's output, loaded by `load_reward_model`."""
    names = [g.name for g in graders] + (["reward_model"] if reward_model is not None else [])
    weights = {g.name: g.weight for g in graders} | ({"reward_model": 1.0} if reward_model is not None else {})
    record = CompletionsLog(completions_file, names)
    functions: list[Callable[..., list[float]]] = [_grader_function(g, record, weights, limits) for g in graders]
    if reward_model is not None:
        functions.append(_reward_model_function(reward_model, record, weights))
    return functions, [weights[name] for name in names]


def _batch(prompts: list[str], completions: list[str], kwargs: dict[str, Any], weights: dict[str, float]
           ) -> dict[str, Any]:
    state = kwargs.get("trainer_state")
    return {"prompts": prompts, "completions": completions, "weights": weights,
            "step": (state.global_step + 1) if state is not None else 0}


def _grader_function(reward: RewardGrader, record: CompletionsLog, weights: dict[str, float],
                     limits: SandboxLimits | None) -> Callable[..., list[float]]:
    def score(prompts: list[str], completions: list[str], item: list[str] | None = None, **kwargs: Any
              ) -> list[float]:
        items = [json.loads(row) for row in item] if item else [{} for _ in completions]
        samples = [{"output_text": text} for text in completions]
        results = grade_samples(reward.grader, samples, items, limits=limits)
        for result in results:
            if result.reason:
                log.info("reward %s scored 0: %s", reward.name, result.reason)
        record.add(reward.name, [r.score for r in results], [r.reason for r in results],
                   _batch(prompts, completions, kwargs, weights))
        return [r.score for r in results]

    score.__name__ = reward.name
    return score


def load_reward_model(cfg: Any, config_dir: Path | None, precision: Any) -> Any:
    """An rm run's output as a frozen scorer: a full sequence classifier, or a LoRA adapter (with its score head)
    applied to the base model it was trained on."""
    from tuneforge.engine.models import load_model, loadable, resolve_model_source

    path = Path(cfg.reward_model).expanduser()
    path = path if path.is_absolute() or config_dir is None else config_dir / path
    adapter = path / "adapter_config.json"
    base = json.loads(adapter.read_text(encoding="utf-8"))["base_model_name_or_path"] if adapter.is_file() else path
    source = loadable(resolve_model_source(str(base), config_dir=config_dir))
    model = load_model(cfg, source, precision, for_training=False, head="score")
    if adapter.is_file():
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(path)).merge_and_unload()
    model.eval().requires_grad_(False)
    return model


def _reward_model_function(scorer: tuple[Any, Any], record: CompletionsLog, weights: dict[str, float]
                           ) -> Callable[..., list[float]]:
    """The reward model's score of prompt + completion, read with the run's tokenizer (the rm run used the same)."""
    import torch

    reward_model, tokenizer = scorer

    def score(prompts: list[str], completions: list[str], **kwargs: Any) -> list[float]:
        texts = [p + c for p, c in zip(prompts, completions, strict=True)]
        batch = tokenizer(texts, return_tensors="pt", padding=True, padding_side="right", add_special_tokens=False)
        device = next(reward_model.parameters()).device
        with torch.inference_mode():
            values = reward_model(**{k: v.to(device) for k, v in batch.items()}).logits[:, 0].float().tolist()
        record.add("reward_model", values, [None] * len(values), _batch(prompts, completions, kwargs, weights))
        return values

    score.__name__ = "reward_model"
    return score
