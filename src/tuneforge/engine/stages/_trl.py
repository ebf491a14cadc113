"""What the stages on TRL's trainers share: their config from the run's TrainingArguments, the tokenised samples as a
`datasets.Dataset`, token counting and the non-finite gradient guard.

TRL's trainers tokenise raw text with the tokenizer's chat template; tuneforge tokenises with the run's template
(data.tokenize_pairs), so each stage subclasses its trainer to take the samples as they are (`ReadyDataset`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tuneforge.engine.trainer import TokenCounter, gradients_finite


def trl_config(config_class: type, args: Any, **stage_settings: Any) -> Any:
    """A TRL *Config with every TrainingArguments value the shared flow chose, plus the stage's own settings."""
    from transformers import TrainingArguments

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainingArguments)
              if f.init and hasattr(args, f.name)}
    values["report_to"] = args.report_to or "none"
    return config_class(**{**values, **stage_settings})


def as_dataset(samples: list[Any]) -> Any:
    """The samples (dataclasses or dicts) as a datasets.Dataset with one column per field."""
    from datasets import Dataset

    return Dataset.from_list([s if isinstance(s, dict) else dataclasses.asdict(s) for s in samples])


class ReadyDataset:
    """Mixed into a TRL trainer: the datasets arrive tokenised, so TRL's own tokenising step is skipped."""

    def _prepare_dataset(self, dataset: Any, *args: Any, **kwargs: Any) -> Any:
        return dataset


class CountsTokens:
    """Mixed into a TRL trainer: tokens read and learnt from (the events' tokens/s), and the same guard as SFT
    against a step whose gradients are not finite (dropped; the divergence guard stops the run)."""

    token_counter: TokenCounter

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        if model.training:
            seen, trained = count_tokens(inputs)
            self.token_counter.tokens_seen += seen
            self.token_counter.trained_tokens += trained
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)  # type: ignore[misc]

    def training_step(self, model: Any, inputs: Any, num_items_in_batch: Any = None) -> Any:
        loss = super().training_step(model, inputs, num_items_in_batch)  # type: ignore[misc]
        if not gradients_finite(model):
            self.token_counter.bad_gradient_steps.append(self.state.global_step + 1)  # type: ignore[attr-defined]
            model.zero_grad(set_to_none=True)
        return loss


def count_tokens(inputs: dict[str, Any]) -> tuple[int, int]:
    """(tokens read, tokens learnt from) of a prepared batch, whatever the trainer's column names."""
    masks = [value for key, value in inputs.items() if key.endswith("attention_mask") and hasattr(value, "sum")]
    if "prompt_mask" in inputs:  # GRPO: prompt and sampled completion
        masks = [inputs["prompt_mask"], inputs["completion_mask"]]
    seen = sum(int(mask.sum()) for mask in masks)
    completion = inputs.get("completion_mask")
    trained = int(completion.sum()) if hasattr(completion, "sum") else seen
    return seen, trained
