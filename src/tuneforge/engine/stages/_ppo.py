"""PPO on the Hugging Face Trainer: sample answers, score them, and take one clipped policy-gradient step with a
learned value baseline (generalised advantage estimation) and a per-token KL penalty towards the starting model.

TRL removed its PPOTrainer in 2026; this is the algorithm as its papers define it (Schulman et al. 2017; the RLHF
form of Ouyang et al. 2022), on the Trainer so the run keeps tuneforge's contract: events, checkpoints, graceful
stop, resume. One optimisation step per rollout: the ratio to the sampling policy is then 1 and the clip guards
nothing, which is PPO with a single epoch over each batch (LLaMA-Factory's ppo_epochs > 1 is refused).
The value head is a linear layer on the policy's last hidden state, trained with the policy and saved beside it
(value_head.safetensors); for LoRA the reference is the base with the adapter switched off.
"""

from __future__ import annotations

import copy
import os
from collections import defaultdict
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch
from transformers import Trainer

from tuneforge.engine.trainer import TokenCounter, gradients_finite

VALUE_HEAD_FILE = "value_head.safetensors"
# The reward arrives at an answer's last token. With lambda = 1 each token's advantage is the answer's return less
# the value estimate there; a shorter credit horizon (lambda < 1) mostly fades the signal of the early tokens, and on
# the test model it learned a fraction as fast.
GAE_LAMBDA, GAMMA, CLIP_RANGE, VALUE_CLIP, VALUE_COEF = 1.0, 1.0, 0.2, 0.2, 0.1


class PromptCollator:
    """Prompts left-padded (generation starts where every prompt ends), with their texts and dataset rows."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        longest = max(len(row["prompt_ids"]) for row in rows)
        ids = [[self.pad_id] * (longest - len(row["prompt_ids"])) + row["prompt_ids"] for row in rows]
        mask = [[0] * (longest - len(row["prompt_ids"])) + [1] * len(row["prompt_ids"]) for row in rows]
        return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask),
                "prompt": [row["prompt"] for row in rows], "item": [row["item"] for row in rows]}


class PPOTrainer(Trainer):
    def __init__(self, *args: Any, rewards: list[Callable[..., list[float]]], reward_weights: list[float],
                 generation: dict[str, Any], kl_coef: float, token_counter: TokenCounter, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rewards, self.reward_weights = rewards, reward_weights
        self.generation, self.kl_coef, self.token_counter = generation, kl_coef, token_counter
        hidden = self.model.config.get_text_config().hidden_size
        self.value_head = torch.nn.Linear(hidden, 1).to(self.args.device)
        torch.nn.init.zeros_(self.value_head.weight)
        torch.nn.init.zeros_(self.value_head.bias)
        is_lora = hasattr(self.model, "disable_adapter")
        self.reference = None if is_lora else copy.deepcopy(self.model).eval().requires_grad_(False)
        self._metrics: dict[str, list[float]] = defaultdict(list)

    # -- one step: rollout, then the clipped surrogate and value losses ------------------------------------------
    def training_step(self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> torch.Tensor:
        inputs = self._prepare_inputs(inputs)
        rollout = self._rollout(model, inputs)
        model.train()
        with self.compute_loss_context_manager():
            logps, values = self._forward(model, rollout["sequences"], rollout["attention"], rollout["start"])
            loss = self._loss(logps, values, rollout)
        self.accelerator.backward(loss / self.args.gradient_accumulation_steps)
        if not gradients_finite(model) or not gradients_finite(self.value_head):
            self.token_counter.bad_gradient_steps.append(self.state.global_step + 1)
            model.zero_grad(set_to_none=True)
            self.value_head.zero_grad(set_to_none=True)
        return loss.detach() / self.args.gradient_accumulation_steps

    @torch.no_grad()
    def _rollout(self, model: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        model.eval()
        unwrapped = self.accelerator.unwrap_model(model)
        prompt_len = inputs["input_ids"].shape[1]
        sequences = unwrapped.generate(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                                       do_sample=True, use_cache=True, **self.generation)
        completion = sequences[:, prompt_len:]
        done = _through_first_stop(completion, self.generation["eos_token_id"])
        attention = torch.cat([inputs["attention_mask"], done.long()], dim=1)
        texts = self.processing_class.batch_decode(completion * done + self.processing_class.pad_token_id * ~done,
                                                    skip_special_tokens=True)
        scores = self._score(inputs["prompt"], texts, inputs["item"]).to(sequences.device)
        logps, values = self._forward(model, sequences, attention, prompt_len)
        # No penalty: the reference forward is skipped and the KL is not measured.
        reference_logps = self._reference_logps(model, sequences, attention, prompt_len) if self.kl_coef else logps
        mask = done.float()
        kl = (logps - reference_logps) * mask
        token_rewards = -self.kl_coef * kl
        last = (mask.sum(dim=1).long() - 1).clamp(min=0)
        token_rewards[torch.arange(len(last)), last] += scores
        advantages, returns = _gae(token_rewards, values, mask)
        self._record(scores, kl, mask, inputs["attention_mask"])
        return {"sequences": sequences, "attention": attention, "start": prompt_len, "mask": mask,
                "old_logps": logps, "old_values": values, "advantages": _whiten(advantages, mask),
                "returns": returns}

    def _score(self, prompts: list[str], completions: list[str], items: list[str]) -> torch.Tensor:
        total = torch.zeros(len(completions))
        for reward, weight in zip(self.rewards, self.reward_weights, strict=True):
            values = reward(prompts=prompts, completions=completions, item=items, trainer_state=self.state)
            total += weight * torch.tensor(values, dtype=torch.float32)
        return total

    def _forward(self, model: Any, sequences: torch.Tensor, attention: torch.Tensor, start: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities of the completion tokens and the value estimate before each of them."""
        out = model(input_ids=sequences, attention_mask=attention, output_hidden_states=True, use_cache=False)
        logits = out.logits[:, start - 1:-1].float() / self.generation.get("temperature", 1.0)
        logps = torch.gather(logits.log_softmax(-1), 2, sequences[:, start:, None]).squeeze(-1)
        hidden = out.hidden_states[-1][:, start - 1:-1]
        values = self.value_head(hidden.to(self.value_head.weight.dtype)).squeeze(-1)
        return logps, values.float()

    def _reference_logps(self, model: Any, sequences: torch.Tensor, attention: torch.Tensor, start: int
                         ) -> torch.Tensor:
        reference = self.reference or self.accelerator.unwrap_model(model)
        switched_off = nullcontext() if self.reference is not None else reference.disable_adapter()
        with switched_off:
            out = reference(input_ids=sequences, attention_mask=attention, use_cache=False)
        logits = out.logits[:, start - 1:-1].float() / self.generation.get("temperature", 1.0)
        return torch.gather(logits.log_softmax(-1), 2, sequences[:, start:, None]).squeeze(-1)

    def _loss(self, logps: torch.Tensor, values: torch.Tensor, rollout: dict[str, Any]) -> torch.Tensor:
        mask, advantages = rollout["mask"], rollout["advantages"]
        ratio = torch.exp(logps - rollout["old_logps"])
        policy = torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - CLIP_RANGE, 1 + CLIP_RANGE))
        old = rollout["old_values"]
        clipped = old + (values - old).clamp(-VALUE_CLIP, VALUE_CLIP)
        value = 0.5 * torch.max((values - rollout["returns"]) ** 2, (clipped - rollout["returns"]) ** 2)
        policy_loss, value_loss = _masked_mean(policy, mask), _masked_mean(value, mask)
        self._metrics["policy_loss"].append(policy_loss.item())
        self._metrics["value_loss"].append(value_loss.item())
        return policy_loss + VALUE_COEF * value_loss

    def _record(self, scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, prompt_mask: torch.Tensor) -> None:
        self._metrics["reward"].append(scores.mean().item())
        self._metrics["reward_std"].append(scores.std().item() if len(scores) > 1 else 0.0)
        if self.kl_coef:
            self._metrics["kl"].append(kl.sum(dim=1).mean().item())
        self._metrics["completions/mean_length"].append(mask.sum(dim=1).mean().item())
        self.token_counter.tokens_seen += int(prompt_mask.sum() + mask.sum())
        self.token_counter.trained_tokens += int(mask.sum())

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:  # a training log: the step's PPO figures, averaged since the last one
            logs.update({key: sum(values) / len(values) for key, values in self._metrics.items() if values})
            self._metrics.clear()
        super().log(logs, start_time)

    # -- the value head is trained with the policy and kept with it --------------------------------------------------
    def create_optimizer(self, model: Any = None) -> Any:
        optimizer = super().create_optimizer() if model is None else super().create_optimizer(model)
        group = {"params": list(self.value_head.parameters()), "weight_decay": 0.0}
        optimizer.add_param_group({**optimizer.param_groups[0], **group})
        return optimizer

    def _save(self, output_dir: str | None = None, state_dict: Any = None) -> None:
        super()._save(output_dir, state_dict)
        from safetensors.torch import save_file

        directory = output_dir or self.args.output_dir
        save_file({k: v.detach().cpu().contiguous() for k, v in self.value_head.state_dict().items()},
                  os.path.join(directory, VALUE_HEAD_FILE))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        path = os.path.join(resume_from_checkpoint, VALUE_HEAD_FILE)
        if os.path.isfile(path):
            from safetensors.torch import load_file

            self.value_head.load_state_dict(load_file(path, device=str(self.args.device)))


def _through_first_stop(completion: torch.Tensor, stop_ids: list[int]) -> torch.Tensor:
    """True for each generated token up to and including the first stop token (generation pads after it)."""
    is_stop = torch.isin(completion, torch.tensor(stop_ids, device=completion.device))
    after = torch.cumsum(is_stop.int(), dim=1) - is_stop.int()
    return after == 0


def _gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over each answer's tokens (values after its end count as 0)."""
    values = values * mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros(rewards.shape[0], device=rewards.device)
    for t in reversed(range(rewards.shape[1])):
        next_value = values[:, t + 1] if t + 1 < rewards.shape[1] else torch.zeros_like(running)
        delta = rewards[:, t] + GAMMA * next_value - values[:, t]
        running = (delta + GAMMA * GAE_LAMBDA * running) * mask[:, t]
        advantages[:, t] = running
    return advantages, advantages + values


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1)


def _whiten(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mean = _masked_mean(values, mask)
    variance = _masked_mean((values - mean) ** 2, mask)
    return (values - mean) * torch.rsqrt(variance + 1e-8) * mask
