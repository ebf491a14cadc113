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
    """Tokens the model has read (input, without padding) and learnt from (targets).

    compute_loss counts this process's batches; under torchrun RankSync adds the other ranks' at every step end.
    """

    tokens_seen: int = 0
    trained_tokens: int = 0
    bad_gradient_steps: list[int] = field(default_factory=list)


class ForgeTrainer(Trainer):
    def __init__(self, *args: Any, token_counter: TokenCounter, loraplus_lr_ratio: float | None = None,
                 loraplus_lr_embedding: float = 1e-6, max_tokens_per_forward: int | None = None,
                 fused_loss: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_tokens_per_forward = max_tokens_per_forward
        self.fused_loss = fused_loss
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
        counted_everywhere = self.args.average_tokens_across_devices and self.model_accepts_loss_kwargs
        if counted_everywhere and num_items_in_batch is not None:
            # num_items_in_batch is then the count over all ranks (Trainer gathers it); DDP averages the gradients.
            loss = loss * self.accelerator.num_processes
        return (loss, {}) if return_outputs else loss

    def _loss_sum(self, model: Any, inputs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed cross-entropy over target tokens, and their count.

        The call goes through `model(...)` itself, never its inner modules: under DDP that forward is what arms the
        gradient all-reduce (bypassing it trains every rank on its own shard, unsynchronised).
        """
        shift_labels = inputs["labels"][:, 1:]
        targets = shift_labels != IGNORE_INDEX
        if self.fused_loss:
            return self._fused_loss_sum(model, inputs, targets)
        # The LM head (a vocabulary-sized projection) runs only where a token is predicted and trained.
        keep = targets.any(dim=0).nonzero().flatten()
        logits = model(
            input_ids=inputs["input_ids"], position_ids=inputs.get("position_ids"),
            attention_mask=inputs.get("attention_mask"), use_cache=False, logits_to_keep=keep,
        ).logits
        # A model that ignores logits_to_keep returns every position.
        logits = logits[targets[:, keep]] if logits.shape[1] == keep.numel() else logits[:, :-1][targets]
        loss_sum = torch.nn.functional.cross_entropy(logits.float(), shift_labels[targets], reduction="sum")
        return loss_sum, targets.sum()

    def _fused_loss_sum(self, model: Any, inputs: dict[str, Any],
                        targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The model computes the loss from the labels itself: under Liger its forward is the fused linear +
        cross-entropy, which never holds the logits (chunks of hidden states meet the LM head inside the kernel).
        That loss is the mean over target tokens; every sample starts with an ignored label, so the model's own
        shift never crosses from one packed sample into the next."""
        outputs = model(
            input_ids=inputs["input_ids"], position_ids=inputs.get("position_ids"),
            attention_mask=inputs.get("attention_mask"), labels=inputs["labels"], use_cache=False,
        )
        n_targets = targets.sum()
        return outputs.loss.float() * n_targets, n_targets

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
        # A long padding-free batch runs as several forward/backward passes at sample boundaries. The loss is a
        # sum over target tokens divided by the batch's target count, so the gradient is exactly the same, while
        # the activations held at once stay under the token budget.
        chunks = split_at_samples(inputs, self.max_tokens_per_forward)
        if num_items_in_batch is None and len(chunks) > 1:
            num_items_in_batch = (inputs["labels"][:, 1:] != IGNORE_INDEX).sum()
        loss = sum(self._chunk_step(model, chunk, num_items_in_batch, last=i == len(chunks) - 1)
                   for i, chunk in enumerate(chunks))
        if not gradients_finite(model):
            # Dropping the step keeps the weights at their last good state; the divergence guard stops the run.
            self.token_counter.bad_gradient_steps.append(self.state.global_step + 1)
            model.zero_grad(set_to_none=True)
        return loss

    def _chunk_step(self, model: Any, chunk: dict[str, Any], num_items_in_batch: Any, last: bool) -> torch.Tensor:
        no_sync = getattr(model, "no_sync", None)
        if last or no_sync is None:
            return super().training_step(model, chunk, num_items_in_batch)
        with no_sync():  # DDP: all-reduce once, after the last chunk
            return super().training_step(model, chunk, num_items_in_batch)

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


def split_at_samples(inputs: dict[str, Any], budget: int | None) -> list[dict[str, Any]]:
    """Consecutive groups of whole samples of at most `budget` tokens (a longer sample stays whole)."""
    total = inputs["input_ids"].shape[1]
    if not budget or total <= budget or "position_ids" not in inputs or inputs["input_ids"].shape[0] != 1:
        return [inputs]
    starts = [*(inputs["position_ids"][0] == 0).nonzero().flatten().tolist(), total]
    chunks, begin = [], 0
    for end, next_end in zip(starts[1:], [*starts[2:], None], strict=True):
        if next_end is None or next_end - begin > budget:
            chunks.append({key: value[:, begin:end] for key, value in inputs.items()})
            begin = end
    return chunks


def activation_token_budget(model: Any, device: str, target_bytes: int | None = None) -> int:
    """Tokens per forward pass whose saved activations fit the target (384 MiB on CPU, a quarter of free GPU memory).

    Per token and layer a decoder keeps roughly 12 hidden-size and 4 intermediate-size values for backward.
    """
    config = getattr(_causal_lm(model), "config", None)
    hidden = getattr(config, "hidden_size", 4096)
    inter = getattr(config, "intermediate_size", 4 * hidden)
    layers = getattr(config, "num_hidden_layers", 32)
    per_token = layers * (12 * hidden + 4 * inter) * 4
    if target_bytes is None:
        target_bytes = torch.cuda.mem_get_info()[0] // 4 if device == "cuda" else 384 << 20
    return max(256, int(target_bytes // per_token))


def _causal_lm(model: Any) -> Any:
    """The *ForCausalLM module under DDP / peft wrappers (LoRA layers live inside it, so they still apply)."""
    model = getattr(model, "module", model)
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return model


def gradients_finite(model: Any) -> bool:
    norms = [p.grad.detach().norm() for p in model.parameters() if p.requires_grad and p.grad is not None]
    if not norms:
        return True
    return math.isfinite(float(torch.stack(norms).sum()))
