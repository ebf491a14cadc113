"""Names a training configuration may choose from: chat templates, schedulers, optimizers, loggers.

Kept here, not read from transformers, because the schema must load without torch or transformers
(the API process validates configurations). A test on the engine side compares these lists with the
installed transformers.
"""

from __future__ import annotations

# Chat templates tuneforge knows by name. "tokenizer" means: use the chat template stored in the
# tokenizer itself (error at run time when it has none). Leaving `template` unset means "auto":
# the tokenizer's own template when it has one, else `default`.
TEMPLATES: tuple[str, ...] = (
    "default",
    "empty",
    "chatml",
    "qwen",
    "qwen2",
    "qwen3",
    "qwen3_nothink",
    "llama2",
    "llama3",
    "chatglm3",
    "glm4",
    "mistral",
    "smollm2",
    "tokenizer",
)

# Values a user may write for `template` that mean "auto" (the same as leaving it unset).
TEMPLATE_AUTO_VALUES: tuple[str, ...] = ("auto",)

# transformers.SchedulerType values (all of them except "greedy", which is an internal placeholder).
LR_SCHEDULERS: tuple[str, ...] = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "reduce_lr_on_plateau",
    "cosine_with_min_lr",
    "cosine_warmup_with_min_lr",
    "warmup_stable_decay",
)

# transformers.OptimizerNames values people actually use for LLM fine-tuning. The 8-bit, paged, lion and
# galore ones need bitsandbytes / galore-torch installed in the worker; the engine reports a missing package.
OPTIMIZERS: tuple[str, ...] = (
    "adamw_torch",
    "adamw_torch_fused",
    "adafactor",
    "sgd",
    "adagrad",
    "rmsprop",
    "adamw_8bit",
    "adamw_bnb_8bit",
    "paged_adamw_8bit",
    "paged_adamw_32bit",
    "lion_8bit",
    "lion_32bit",
    "paged_lion_8bit",
    "paged_lion_32bit",
    "galore_adamw",
    "galore_adamw_8bit",
    "galore_adafactor",
    "apollo_adamw",
    "schedule_free_adamw",
    "schedule_free_sgd",
)

# Experiment trackers `report_to` accepts ("none": only tuneforge's own logs; "all": every one installed).
REPORT_TO: tuple[str, ...] = ("none", "all", "tensorboard", "wandb", "mlflow", "swanlab")

# Quantization methods; LLaMA-Factory's YAMLs spell bitsandbytes out in full, its web UI says "bnb".
QUANTIZATION_METHOD_SYNONYMS: dict[str, str] = {"bitsandbytes": "bnb"}

# `compute_type` (what cloud consoles offer) -> the bf16 / fp16 flags it stands for.
COMPUTE_TYPES: dict[str, tuple[bool, bool]] = {
    "bf16": (True, False),
    "fp16": (False, True),
    "fp32": (False, False),
}

# LLaMA-Factory options tuneforge does not implement (optimizer families, Ray, multimodal towers, ...).
# Still refused like any unknown key, but the message says why instead of guessing a spelling mistake.
UNSUPPORTED_LF_KEY_PREFIXES: tuple[str, ...] = (
    "use_galore", "galore_", "use_badam", "badam_", "use_apollo", "apollo_", "use_adam_mini", "use_muon",
    "swanlab_", "use_swanlab", "use_mod", "mixture_of_depths", "freeze_vision_tower",
    "freeze_multi_modal_projector", "freeze_language_model", "train_mm_proj_only", "use_dft_loss",
    "use_eaft_loss", "use_kt", "kt_", "use_cce", "fp8", "moe_aux_loss_coef", "use_reentrant_gc",
)
