"""The training configuration of one fine-tuning run, with LLaMA-Factory's names and defaults.

`TrainingConfig` is the single source of every training parameter: the console form, the CLI help and
docs/parameters.md are generated from its fields. Parse user input with
`tuneforge.schemas.parse_training_config`, which applies ALIASES and reports every problem at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

from pydantic import ValidationInfo, model_validator

from tuneforge.schemas.config_errors import ConfigProblem
from tuneforge.schemas.training_fields import (
    AccelerationArgs,
    DataArgs,
    MethodArgs,
    ModelArgs,
    QuantizationArgs,
)
from tuneforge.schemas.training_fields_cluster import ClusterArgs
from tuneforge.schemas.training_fields_rl import ReinforcementArgs
from tuneforge.schemas.training_fields_tuning import (
    EvalArgs,
    FreezeArgs,
    GuardArgs,
    LoraArgs,
    OutputArgs,
    TrainingArgs,
)

# Display order of the groups in the console, CLI help and docs.
GROUPS: tuple[str, ...] = (
    "model", "method", "data", "training", "output", "lora", "freeze", "quantization", "acceleration",
    "eval", "guard",
)

# Other names users write (seeds, cloud consoles, the native API's camelCase) -> the field they mean.
# Accepted as input keys only; output always uses the field name.
ALIASES: dict[str, str] = {
    "max_seq_length": "cutoff_len",
    "max_length": "cutoff_len",
    "seq_len": "cutoff_len",
    "lora_r": "lora_rank",
    "batch_size": "per_device_train_batch_size",
    "epochs": "num_train_epochs",
    "num_epochs": "num_train_epochs",
    "n_epochs": "num_train_epochs",
    "lr": "learning_rate",
    "grad_accum": "gradient_accumulation_steps",
    "gradient_accumulation": "gradient_accumulation_steps",
    "model": "model_name_or_path",
    "base_model": "model_name_or_path",
    "baseModel": "model_name_or_path",
    "adapter_path": "adapter_name_or_path",
    "system_prompt": "default_system",
    "system": "default_system",
    "lora_target_modules": "lora_target",
    "target_modules": "lora_target",
    "scheduler": "lr_scheduler_type",
    "lr_scheduler": "lr_scheduler_type",
    "optimizer": "optim",
    "quantization": "quantization_bit",
    "quant_bit": "quantization_bit",
    "output_path": "output_dir",
    "outputPath": "output_dir",
    "neftune_alpha": "neftune_noise_alpha",
    "val_ratio": "val_size",
    "validation_split": "val_size",
    "evaluation_strategy": "eval_strategy",  # transformers' old name, still in LLaMA-Factory examples
    "activation_checkpointing": "gradient_checkpointing",  # transformers 5's name
    "use_liger_kernel": "enable_liger_kernel",  # transformers' name
    "hub_token": "hf_hub_token",  # transformers' name
}

# LLaMA-Factory keys that mean the opposite of a field: `disable_gradient_checkpointing: true` is
# gradient_checkpointing: false.
NEGATED_ALIASES: dict[str, str] = {"disable_gradient_checkpointing": "gradient_checkpointing"}

# `compute_type: bf16|fp16|fp32` is not a field: it sets the bf16 / fp16 flags (see config_loading); `auto` is
# resolved by the planner from the devices (planning.auto_values).
COMPUTE_TYPE_KEY = "compute_type"


# pydantic collects fields from the last base to the first: listed in reverse so that dumps start with
# the model and end with the guard, in GROUPS order.
class TrainingConfig(
    GuardArgs, EvalArgs, ClusterArgs, AccelerationArgs, QuantizationArgs, FreezeArgs, LoraArgs, OutputArgs,
    TrainingArgs, DataArgs, ReinforcementArgs, MethodArgs, ModelArgs,
):
    """Every argument of one fine-tuning run (LLaMA-Factory names; tuneforge's own in group "guard")."""

    @property
    def precision(self) -> Literal["bf16", "fp16", "fp32"]:
        """The compute type the run trains in."""
        if self.bf16 or self.pure_bf16:
            return "bf16"
        return "fp16" if self.fp16 else "fp32"

    @property
    def effective_lora_alpha(self) -> int:
        """lora_alpha, or 2 × lora_rank when it is unset."""
        return self.lora_alpha if self.lora_alpha is not None else 2 * self.lora_rank

    @property
    def uses_validation(self) -> bool:
        """Whether a validation set exists (split from training data or a separate eval_dataset)."""
        return bool(self.val_size) or bool(self.eval_dataset)

    def model_dump_for_spec(self) -> dict[str, Any]:
        """JSON-safe dict of every field (secrets left out) for spec.json; parses back to an equal config."""
        return self.model_dump(mode="json")

    @model_validator(mode="after")
    def _cross_field_rules(self, info: ValidationInfo) -> TrainingConfig:
        # parse_training_config collects these itself, next to the field errors.
        if info.context and info.context.get("defer_cross_checks"):
            return self
        problems = cross_field_problems(self)
        if problems:
            raise ValueError("; ".join(str(problem) for problem in problems))
        return self


def _precision_flags(config: TrainingConfig) -> list[ConfigProblem]:
    if config.bf16 and config.fp16:
        return [ConfigProblem("bf16, fp16", "both are true — choose one: bf16 on Ampere (RTX 30xx / A100) or "
                                            "newer GPUs, else fp16")]
    return []


def _interleave_probs(config: TrainingConfig) -> list[ConfigProblem]:
    probs = config.interleave_probs
    if probs is None:
        return []
    problems = []
    count = len(config.dataset or [])
    if len(probs) != count:
        problems.append(ConfigProblem(
            "interleave_probs", f"has {len(probs)} values but dataset names {count} — give one per dataset"))
    if not math.isclose(sum(probs), 1.0, abs_tol=1e-6):
        problems.append(ConfigProblem("interleave_probs", f"must sum to 1, got {sum(probs):g}"))
    if any(p < 0 for p in probs):
        problems.append(ConfigProblem("interleave_probs", "must not contain negative values"))
    return problems


def _quantized_needs_lora(config: TrainingConfig) -> list[ConfigProblem]:
    if config.quantization_bit is not None and config.finetuning_type != "lora":
        bits = config.quantization_bit
        return [ConfigProblem("quantization_bit", f"a model quantized to {bits} bits can only be trained with "
                                                  "finetuning_type lora (QLoRA) — unset quantization_bit or "
                                                  "use lora")]
    return []


# Each rule with the fields it reads: a rule is skipped when one of those fields already has an error.
CROSS_FIELD_RULES: tuple[tuple[tuple[str, ...], Callable[[TrainingConfig], list[ConfigProblem]]], ...] = (
    (("bf16", "fp16"), _precision_flags),
    (("interleave_probs", "dataset"), _interleave_probs),
    (("quantization_bit", "finetuning_type"), _quantized_needs_lora),
)


def cross_field_problems(config: TrainingConfig, skip: frozenset[str] = frozenset()) -> list[ConfigProblem]:
    """Problems that involve several fields; rules touching a field in `skip` are not run."""
    problems: list[ConfigProblem] = []
    for fields, rule in CROSS_FIELD_RULES:
        if not skip.intersection(fields):
            problems.extend(rule(config))
    return problems


def aliases_of(field: str) -> list[str]:
    """Input names that mean `field` (compute_type for bf16 / fp16)."""
    names = [alias for alias, target in ALIASES.items() if target == field]
    if field in ("bf16", "fp16"):
        names.append(COMPUTE_TYPE_KEY)
    names += [f"{alias} (negated)" for alias, target in NEGATED_ALIASES.items() if target == field]
    return names


def _document_aliases() -> None:
    # The alias table is the one source: copy it into each field's help instead of writing it twice.
    for name, info in TrainingConfig.model_fields.items():
        extra = info.json_schema_extra
        aliases = aliases_of(name)
        if not isinstance(extra, dict) or not aliases or "aliases" in extra:
            continue
        extra["aliases"] = [*aliases]  # a fresh list: json_schema_extra holds JSON values (list[JsonValue])
        extra["help_en"] = f"{extra['help_en']} Also accepted as: {', '.join(aliases)}."
        extra["help_zh"] = f"{extra['help_zh']}也可写作：{'、'.join(aliases)}。"


_document_aliases()
