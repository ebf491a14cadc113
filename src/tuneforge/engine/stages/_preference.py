"""The DPO trainer tuneforge runs: TRL's DPOTrainer on tokenised pairs, plus the reference-free losses.

ORPO (odds ratio + SFT on the chosen answer) and SimPO (average log-probability margin above a target gamma) compare
the policy's own length-normalised log-probabilities of the chosen and rejected answers; no reference model runs.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from trl import DPOTrainer

from tuneforge.engine.stages._trl import CountsTokens, ReadyDataset

_NOT_MODEL_INPUTS = frozenset({"completion_mask", "ref_chosen_logps", "ref_rejected_logps"})


class PreferenceTrainer(ReadyDataset, CountsTokens, DPOTrainer):
    reference_free: str | None = None  # "orpo" | "simpo" | None (TRL's loss against the reference)
    simpo_gamma: float = 0.5
    pref_ftx: float = 0.0

    def _compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool) -> Any:
        if self.reference_free is None:
            return super()._compute_loss(model, inputs, return_outputs)
        chosen, rejected = self._average_logps(model, inputs)
        if self.reference_free == "simpo":
            margin = chosen - rejected - self.simpo_gamma / self.beta
            per_pair = -F.logsigmoid(self.beta * margin) + self.pref_ftx * -chosen
        else:
            per_pair = -chosen + self.beta * -F.logsigmoid(_log_odds(chosen) - _log_odds(rejected))
        self._log_rewards(self.beta * chosen.detach(), self.beta * rejected.detach())
        loss = per_pair.mean()
        return (loss, {}) if return_outputs else loss

    def _average_logps(self, model: Any, inputs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean log-probability per answer token of the chosen and rejected answers (batch: [chosen, rejected])."""
        completion_mask = inputs["completion_mask"]
        labels = inputs["input_ids"].masked_fill(completion_mask == 0, -100)
        model_inputs = {key: value for key, value in inputs.items() if key not in _NOT_MODEL_INPUTS}
        outputs = model(**model_inputs, labels=labels, use_cache=False, fused_lm_head=True)
        mask = completion_mask[:, 1:]
        per_token = outputs.log_probs[:, -mask.size(1):] * mask
        average = per_token.sum(dim=1) / mask.sum(dim=1).clamp(min=1)
        chosen, rejected = average.chunk(2, dim=0)
        return chosen, rejected

    def _log_rewards(self, chosen: torch.Tensor, rejected: torch.Tensor) -> None:
        mode = "train" if self.model.training else "eval"
        gather = self.accelerator.gather_for_metrics
        chosen, rejected = gather(chosen), gather(rejected)
        self._metrics[mode]["rewards/chosen"].append(chosen.mean().item())
        self._metrics[mode]["rewards/rejected"].append(rejected.mean().item())
        self._metrics[mode]["rewards/accuracies"].append((chosen > rejected).float().mean().item())
        self._metrics[mode]["rewards/margins"].append((chosen - rejected).mean().item())


def _log_odds(average_logp: torch.Tensor) -> torch.Tensor:
    """log(p / (1 - p)) of an answer's average token probability p, kept finite as p nears 1."""
    logp = average_logp.clamp(max=-1e-6)
    return logp - torch.log(-torch.expm1(logp))
