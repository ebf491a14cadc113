"""The Trainer tuneforge runs: Hugging Face's Trainer with a loss that skips the LM head on untrained positions,
token counting, LoRA+ optimizer groups and a guard against non-finite gradients."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import Trainer

from tuneforge.engine.batching import IGNORE_INDEX


@dataclass
class TokenCounter:
    """Tokens the model has read (input, without padding) and learnt from (targets), on this process."""

    tokens_seen: int = 0
    trained_tokens: int = 0
    bad_gradient_steps: list[int] = field(default_factory=list)


class ForgeTrainer(Trainer):
    def __init__(self, *args: Any, token_counter: TokenCounter, loraplus_lr_ratio: float | None = None,
                 loraplus_lr_embedding: float = 1e-6, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.token_counter = token_counter
        self.loraplus_lr_ratio = loraplus_lr_ratio
        self.loraplus_lr_embedding = loraplus_lr_embedding
        # compute_loss below normalises by the number of target tokens of the whole accumulated batch.
        self.loss_is_scaled_for_ga = True

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        loss_sum, n_targets = self._loss_sum(model, inputs)
        if model.training:
            self.token_counter.tokens_seen += int(inputs["input_ids"].numel())
            self.token_counter.trained_tokens += int(n_targets)
        denominator = num_items_in_batch if num_items_in_batch is not None else n_targets
        loss = loss_sum / torch.clamp(torch.as_tensor(denominator, device=loss_sum.device), min=1)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes
        return (loss, {}) if return_outputs else loss

    def _loss_sum(self, model: Any, inputs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed cross-entropy over target tokens, and their count."""
        shift_labels = inputs["labels"][:, 1:]
        targets = shift_labels != IGNORE_INDEX
        causal_lm = _causal_lm(model)
        hidden = causal_lm.get_decoder()(
            input_ids=inputs["input_ids"], position_ids=inputs.get("position_ids"),
            attention_mask=inputs.get("attention_mask"), use_cache=False,
        ).last_hidden_state
        # The LM head (a vocabulary-sized projection) runs only where a token is predicted and trained.
        logits = causal_lm.get_output_embeddings()(hidden[:, :-1][targets]).float()
        loss_sum = torch.nn.functional.cross_entropy(logits, shift_labels[targets], reduction="sum")
        return loss_sum, targets.sum()

    def evaluate(self, eval_dataset: Any = None, ignore_keys: list[str] | None = None,
                 metric_key_prefix: str = "eval") -> dict[str, float]:
        """Eval loss weighted by target tokens over the whole eval set (not a mean of per-batch means)."""
        dataloader = self.get_eval_dataloader(eval_dataset)
        model = self.model
        was_training = model.training
        model.eval()
        totals = torch.zeros(2, dtype=torch.float64, device=self.args.device)
        with torch.no_grad():
            for inputs in dataloader:
                loss_sum, n_targets = self._loss_sum(model, self._prepare_inputs(inputs))
                totals += torch.stack([loss_sum.double(), n_targets.double()])
        totals = self.accelerator.reduce(totals, reduction="sum")
        eval_loss = float(totals[0] / torch.clamp(totals[1], min=1))
        metrics = {f"{metric_key_prefix}_loss": eval_loss,
                   f"{metric_key_prefix}_perplexity": math.exp(min(eval_loss, 50.0))}
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        if was_training:
            model.train()
        return metrics

    def training_step(self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> torch.Tensor:
        loss = super().training_step(model, inputs, num_items_in_batch)
        if not _gradients_finite(model):
            # Dropping the step keeps the weights at their last good state; the divergence guard stops the run.
            self.token_counter.bad_gradient_steps.append(self.state.global_step + 1)
            model.zero_grad(set_to_none=True)
        return loss

    def create_optimizer(self, model: Any = None) -> Any:
        if self.optimizer is None and self.loraplus_lr_ratio:
            from peft.optimizers import create_loraplus_optimizer

            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, self.model)
            self.optimizer = create_loraplus_optimizer(
                model=self.model, optimizer_cls=optimizer_cls, loraplus_lr_ratio=self.loraplus_lr_ratio,
                loraplus_lr_embedding=self.loraplus_lr_embedding, **optimizer_kwargs,
            )
            return self.optimizer
        return super().create_optimizer(model) if model is not None else super().create_optimizer()


def _causal_lm(model: Any) -> Any:
    """The *ForCausalLM module under DDP / peft wrappers (LoRA layers live inside it, so they still apply)."""
    model = getattr(model, "module", model)
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return model


def _gradients_finite(model: Any) -> bool:
    norms = [p.grad.detach().norm() for p in model.parameters() if p.requires_grad and p.grad is not None]
    if not norms:
        return True
    return math.isfinite(float(torch.stack(norms).sum()))
