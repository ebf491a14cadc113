"""Next-token training, shared by the stages that train a causal LM on its own tokens (pt and sft).

They differ only in their records (plain text, packed by default, for pt; chat turns with the prompt masked for
sft), and the data layer reads that off the stage table; batching, loss and metrics are the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tuneforge.engine.stages._common import prepare_data

__all__ = ["build_trainer", "extra_metrics", "prepare_data"]

if TYPE_CHECKING:
    from tuneforge.engine.stages.base import TrainerInputs
    from tuneforge.engine.trainer import TokenCounter


def build_trainer(inputs: TrainerInputs) -> Any:
    """ForgeTrainer on padding-free batches: samples concatenated into one row, no compute spent on padding."""
    from tuneforge.engine.batching import PaddingFreeCollator, SampleDataset
    from tuneforge.engine.trainer import ForgeTrainer

    cfg = inputs.cfg
    return ForgeTrainer(
        model=inputs.model, args=inputs.args, train_dataset=SampleDataset(inputs.data.train),
        eval_dataset=SampleDataset(inputs.data.eval) if inputs.has_eval else None,
        data_collator=PaddingFreeCollator(), processing_class=inputs.tokenizer, token_counter=inputs.counter,
        loraplus_lr_ratio=cfg.loraplus_lr_ratio, loraplus_lr_embedding=cfg.loraplus_lr_embedding,
        max_tokens_per_forward=token_budget(inputs),
        fused_loss=cfg.enable_liger_kernel,  # Liger's fused linear + cross-entropy needs the labels in the forward
        callbacks=inputs.callbacks,
    )


def token_budget(inputs: TrainerInputs) -> int | None:
    """Tokens one forward pass may hold before a batch is split at sample boundaries. None under DeepSpeed and
    FSDP: their engines own gradient accumulation and sync (DeepSpeed steps its optimizer at each backward of an
    accumulation boundary, and ZeRO-2/3 refuse no_sync), so a split batch would not be one step."""
    from tuneforge.engine.trainer import activation_token_budget

    cfg = inputs.cfg
    if cfg.deepspeed or cfg.fsdp:
        return None
    # A sample is never split, so a budget below cutoff_len lowers no peak; it would only add passes.
    return max(activation_token_budget(inputs.model, inputs.precision.device), cfg.cutoff_len)


def extra_metrics(inputs: TrainerInputs, train_metrics: dict[str, Any]) -> dict[str, Any]:
    counter = inputs.counter
    metrics: dict[str, Any] = {"tokens_seen": counter.tokens_seen, "trained_tokens": counter.trained_tokens}
    metrics.update(transformers_token_metrics(inputs.cfg, counter, train_metrics.get("train_runtime")))
    return metrics


def transformers_token_metrics(cfg: Any, counter: TokenCounter, runtime: float | None) -> dict[str, float]:
    """The token figures LLaMA-Factory users find in all_results.json, under transformers' names, when asked for."""
    metrics: dict[str, float] = {}
    if cfg.include_num_input_tokens_seen:
        metrics["num_input_tokens_seen"] = counter.tokens_seen
    if cfg.include_effective_tokens_per_second and runtime:
        metrics["effective_tokens_per_sec"] = round(counter.trained_tokens / runtime, 2)
    return metrics
