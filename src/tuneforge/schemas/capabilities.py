"""What each training setting needs to be honoured: a stage, a finetuning type, another setting, CUDA, a package.

The planner (tuneforge.planning.capabilities) checks every declaration against the host and refuses, before any
compute, a setting that this engine or this host cannot honour — naming the field, the reason and what to choose
instead. A setting that would be accepted and ignored is declared here too, so nothing is silently dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tuneforge.schemas.stages import STAGES, SUPPORTED_STAGES
from tuneforge.schemas.strategies import DEEPSPEED_PRESETS
from tuneforge.schemas.training import TrainingConfig

Config = TrainingConfig
Check = Callable[[Config], str | None]  # the reason the setting cannot be honoured, or None


@dataclass(frozen=True)
class Package:
    module: str  # what `import` names
    install: str  # what pip installs
    cuda_only: bool = False  # the package works only with an NVIDIA GPU


BITSANDBYTES = Package("bitsandbytes", "bitsandbytes")  # CUDA GPUs, and CPUs (checked with 0.50)
PACKAGES: dict[str, Package] = {p.module: p for p in (
    BITSANDBYTES,
    Package("hqq", "hqq", cuda_only=True),
    Package("eetq", "eetq", cuda_only=True),
    Package("liger_kernel", "liger-kernel", cuda_only=True),
    Package("flash_attn", "flash-attn", cuda_only=True),
    Package("deepspeed", "deepspeed", cuda_only=True),
    Package("unsloth", "unsloth", cuda_only=True),
    Package("galore_torch", "galore-torch"),
    Package("apollo_torch", "apollo-torch"),
    Package("schedulefree", "schedulefree"),
    Package("tensorboard", "tensorboard"),
    Package("wandb", "wandb"),
    Package("mlflow", "mlflow"),
    Package("swanlab", "swanlab"),
    Package("ray", "ray[train]"),
)}


@dataclass(frozen=True)
class Capability:
    """One field's needs. `active` says when the setting asks for something (default: not its default value)."""

    field: str
    active: Callable[[Config], bool] | None = None
    stages: tuple[str, ...] = ()  # empty: any stage
    finetuning_types: tuple[str, ...] = ()  # empty: any
    packages: Callable[[Config], tuple[str, ...]] = lambda _cfg: ()  # module names, see PACKAGES
    cuda: bool = False
    min_cuda_capability: tuple[int, int] | None = None
    requires: Check | None = None  # another setting must agree
    unsupported: str | None = None  # refused on every host: why
    instead: str = ""  # what to choose instead, shown after the reason
    hub_only: bool = False  # applies to hub models only (revision, cache, token)
    eval_data: bool = False  # needs a validation split, an eval_dataset or a dataset folder's valid file

    def is_active(self, cfg: Config) -> bool:
        if self.active is not None:
            return self.active(cfg)
        current: object = getattr(cfg, self.field)
        default: object = TrainingConfig.model_fields[self.field].default
        return current != default


def _stage_runs(cfg: Config) -> str | None:
    if cfg.stage in SUPPORTED_STAGES:
        return None
    return (f"stage '{cfg.stage}' ({STAGES[cfg.stage].label_en}) is not implemented by this version's engine; "
            f"it trains {', '.join(SUPPORTED_STAGES)}")


SAMPLING_STAGES = ("ppo", "grpo")  # the stages that sample answers and score them


def _not_kto_pair(cfg: Config) -> str | None:
    return "kto_pair is LLaMA-Factory's old pairwise KTO; train stage kto on kto_tag data" \
        if cfg.pref_loss == "kto_pair" else None


def _with_simpo(cfg: Config) -> str | None:
    return None if cfg.pref_loss == "simpo" else "is SimPO's target margin: it needs pref_loss: simpo"


def _quantization_packages(cfg: Config) -> tuple[str, ...]:
    return (cfg.quantization_method if cfg.quantization_method != "bnb" else "bitsandbytes",)


def _bnb_four_bit(cfg: Config) -> str | None:
    if cfg.quantization_bit == 4 and cfg.quantization_method == "bnb":
        return None
    return "applies only to 4-bit bitsandbytes quantization (quantization_bit: 4, quantization_method: bnb)"


def _optimizer_packages(cfg: Config) -> tuple[str, ...]:
    name = cfg.optim
    if "8bit" in name or name.startswith("paged_") or name.startswith("lion_"):
        return ("bitsandbytes",)
    for prefix, module in (("galore_", "galore_torch"), ("apollo_", "apollo_torch"),
                           ("schedule_free_", "schedulefree")):
        if name.startswith(prefix):
            return (module,)
    return ()


def _reporter_packages(cfg: Config) -> tuple[str, ...]:
    return tuple(name for name in cfg.report_to if name in PACKAGES)


def _with_pissa_init(cfg: Config) -> str | None:
    return None if cfg.pissa_init else "converts a PiSSA adapter: it needs pissa_init: true"


def _with_loraplus(cfg: Config) -> str | None:
    return None if cfg.loraplus_lr_ratio else "is the LoRA+ learning rate of embeddings: it needs loraplus_lr_ratio"


def _with_adapter(cfg: Config) -> str | None:
    return None if cfg.adapter_name_or_path else "creates a new adapter beside a loaded one: it needs " \
                                                 "adapter_name_or_path"


def _with_interleave(cfg: Config) -> str | None:
    return None if cfg.mix_strategy != "concat" else "weights interleaved datasets: set mix_strategy to " \
                                                     "interleave_under or interleave_over"


def _with_eval_steps(cfg: Config) -> str | None:
    return None if cfg.eval_strategy == "steps" else "sets the interval of eval_strategy: steps"


def _with_save_steps(cfg: Config) -> str | None:
    return None if cfg.save_strategy == "steps" else "sets the interval of save_strategy: steps"


def _with_tensorboard(cfg: Config) -> str | None:
    if any(name in ("tensorboard", "all") for name in cfg.report_to):
        return None
    return "is where TensorBoard writes: it needs report_to: tensorboard"


def _with_reporter(cfg: Config) -> str | None:
    return None if [r for r in cfg.report_to if r != "none"] else "names the run for experiment trackers: it " \
                                                                  "needs report_to (tensorboard, wandb, …)"


def _with_tokenized_path(cfg: Config) -> str | None:
    return None if cfg.tokenized_path else "re-tokenises instead of reading a saved copy: it needs tokenized_path"


def _with_pissa(cfg: Config) -> str | None:
    return None if cfg.pissa_init else "sets PiSSA's SVD iterations: it needs pissa_init: true"


ADAMW = ("adamw_torch", "adamw_torch_fused", "adamw_hf", "adamw")


def _deepspeed_combination(cfg: Config) -> str | None:
    preset = DEEPSPEED_PRESETS.get(cfg.deepspeed or "")
    if cfg.quantization_bit and preset is not None and preset.stage == 3:
        return (f"ZeRO-3 shards the weights, and {cfg.quantization_bit}-bit quantized weights cannot be sharded "
                "here: choose deepspeed z2 (or z2_offload) for QLoRA")
    if cfg.pure_bf16:
        return ("ZeRO keeps an fp32 master copy and fp32 optimizer state whatever the weights' dtype, so "
                "pure_bf16 saves nothing under it: use bf16 instead")
    if preset is not None and preset.offload_optimizer and cfg.optim not in ADAMW:
        return (f"{cfg.deepspeed} runs the optimizer on the CPU with DeepSpeed's own Adam, which would replace "
                f"optim {cfg.optim}: use optim adamw_torch, or a preset without offload")
    return None


def _fsdp_alone(cfg: Config) -> str | None:
    if cfg.deepspeed:
        return "and deepspeed both shard the model: choose one of them"
    if cfg.quantization_bit:
        return (f"FSDP2 shards every parameter, and {cfg.quantization_bit}-bit quantized weights cannot be sharded "
                "here: choose deepspeed z2 for QLoRA on several GPUs")
    return None


def _ray_workers(cfg: Config) -> str | None:
    gpus = (cfg.resources_per_worker or {}).get("GPU", 0)
    if gpus > 1:
        return (f"gives each Ray worker {gpus:g} GPUs, and a worker trains on one (the others would idle): ask for "
                f"ray_num_workers: {int(cfg.ray_num_workers or 1) * int(gpus)} with {{\"GPU\": 1}}")
    if cfg.deepspeed or cfg.fsdp:
        return "with deepspeed / fsdp is not checked on Ray here: shard with them under torchrun (gpuConfig)"
    return None


def _with_ray(cfg: Config) -> str | None:
    return None if cfg.ray_num_workers else "says how a Ray run starts: it needs ray_num_workers"


def _ray(name: str, **kwargs: Any) -> Capability:
    return Capability(name, packages=lambda _cfg: ("ray",), **kwargs)


PREDICT_ONLY = ("training runs do not generate predictions; evaluate a published model with `tuneforge eval` "
                "(or the console's evaluation), which generates and scores answers")
MULTIMODAL = "multimodal (image / video) training is not supported; train on text data"


def _lora(name: str, **kwargs: Any) -> Capability:
    return Capability(name, finetuning_types=("lora",), **kwargs)


def _freeze(name: str, **kwargs: Any) -> Capability:
    return Capability(name, finetuning_types=("freeze",), **kwargs)


CAPABILITIES: tuple[Capability, ...] = (
    Capability("stage", active=lambda _cfg: True, requires=_stage_runs,
               instead="choose one of the stages this version trains"),
    Capability("do_train", unsupported="a run that does not train (evaluate or predict only) is not a training "
                                       "task", instead="set do_train: true; evaluate with `tuneforge eval`"),
    Capability("do_predict", unsupported=PREDICT_ONLY, instead="remove do_predict"),
    Capability("predict_with_generate", unsupported=PREDICT_ONLY, instead="remove predict_with_generate"),
    *(Capability(name, stages=SAMPLING_STAGES) for name in ("max_new_tokens", "temperature", "top_p", "top_k",
                                                            "kl_coef", "rewards", "reward_model")),
    Capability("num_generations", stages=("grpo",)),
    Capability("grpo_loss", stages=("grpo",)),
    Capability("pref_beta", stages=("dpo", "kto")),
    Capability("pref_ftx", stages=("dpo",)),
    Capability("pref_loss", stages=("dpo",), requires=_not_kto_pair),
    Capability("simpo_gamma", stages=("dpo",), requires=_with_simpo),
    Capability("kto_chosen_weight", stages=("kto",)),
    Capability("kto_rejected_weight", stages=("kto",)),
    Capability("streaming", unsupported="streamed datasets are not supported: tuneforge reads, validates and "
                                        "counts every record before training", instead="remove streaming"),
    Capability("enable_thinking", unsupported="tuneforge's templates keep the reasoning part as the data has it",
               instead="to train without thinking, choose template qwen3_nothink"),
    Capability("media_dir", unsupported=MULTIMODAL, instead="remove media_dir"),
    Capability("image_max_pixels", unsupported=MULTIMODAL, instead="remove image_max_pixels"),
    Capability("video_max_pixels", unsupported=MULTIMODAL, instead="remove video_max_pixels"),
    Capability("interleave_probs", requires=_with_interleave),
    Capability("group_by_length", unsupported="batches are padding-free (samples concatenated), so there is no "
                                              "padding for length grouping to save", instead="remove group_by_length"),
    Capability("optim", packages=_optimizer_packages),
    Capability("report_to", packages=_reporter_packages),
    Capability("logging_dir", requires=_with_tensorboard),
    Capability("run_name", requires=_with_reporter),
    Capability("save_steps", requires=_with_save_steps),
    Capability("eval_steps", requires=_with_eval_steps),
    # bf16 runs on CPUs too (autocast); on a GPU it needs Ampere or newer.
    Capability("bf16", min_cuda_capability=(8, 0), instead="use fp16 on this GPU"),
    Capability("pure_bf16", min_cuda_capability=(8, 0), instead="use fp16 on this GPU"),
    Capability("fp16", cuda=True, instead="remove fp16 (fp32), or bf16"),
    Capability("do_eval", active=lambda cfg: cfg.do_eval is True, eval_data=True),
    Capability("eval_on_start", eval_data=True),
    Capability("per_device_eval_batch_size", eval_data=True),
    Capability("eval_strategy", eval_data=True),
    # Hub download settings mean nothing for a local model (the planner knows which it is).
    *(Capability(name, hub_only=True, instead=f"remove {name}") for name in ("model_revision", "cache_dir",
                                                                               "hf_hub_token")),
    Capability("upcast_layernorm", active=lambda cfg: cfg.upcast_layernorm,
               requires=lambda cfg: None if cfg.bf16 or cfg.fp16 or cfg.pure_bf16 else
               "keeps norms in fp32 while the rest trains in bf16 / fp16; in fp32 everything already is",
               instead="remove upcast_layernorm, or train in bf16 / fp16"),
    *(_lora(name) for name in ("lora_rank", "lora_alpha", "lora_dropout", "lora_target", "additional_target",
                               "loraplus_lr_ratio", "use_rslora", "use_dora", "pissa_init")),
    _lora("loraplus_lr_embedding", requires=_with_loraplus),
    _lora("pissa_iter", requires=_with_pissa),
    _lora("pissa_convert", requires=lambda cfg: _with_pissa_init(cfg) or (
        "cannot convert a DoRA adapter (its magnitude vectors have no plain-LoRA form): remove use_dora or "
        "pissa_convert" if cfg.use_dora else None)),
    _lora("create_new_adapter", requires=_with_adapter),
    *(_freeze(name) for name in ("freeze_trainable_layers", "freeze_trainable_modules", "freeze_extra_modules")),
    _freeze("use_llama_pro", unsupported="LLaMA Pro (expanding the model with new blocks) is not supported",
            instead="use finetuning_type freeze or lora"),
    Capability("quantization_bit", active=lambda cfg: cfg.quantization_bit is not None,
               finetuning_types=("lora",), packages=_quantization_packages,
               instead="pip install 'tuneforge[gpu]', or remove quantization_bit (plain LoRA)"),
    Capability("quantization_method", active=lambda cfg: cfg.quantization_method != "bnb",
               requires=lambda cfg: None if cfg.quantization_bit else "chooses how quantization_bit quantizes: it "
                                                                       "needs quantization_bit",
               packages=_quantization_packages, instead="remove quantization_method"),
    *(Capability(name, requires=_bnb_four_bit, packages=lambda _cfg: ("bitsandbytes",), instead=f"remove {name}")
      for name in ("quantization_type", "double_quantization")),
    Capability("flash_attn", active=lambda cfg: cfg.flash_attn == "fa2", packages=lambda _cfg: ("flash_attn",),
               cuda=True, min_cuda_capability=(8, 0), instead="use flash_attn: auto or sdpa"),
    Capability("enable_liger_kernel", packages=lambda _cfg: ("liger_kernel",), cuda=True,
               instead="remove enable_liger_kernel"),
    Capability("use_unsloth", unsupported="Unsloth replaces the model code and trainer with its own, which "
                                          "tuneforge's worker does not drive",
               instead="remove use_unsloth; padding-free batches give the speed-up here"),
    Capability("deepspeed", active=lambda cfg: bool(cfg.deepspeed), packages=lambda _cfg: ("deepspeed",),
               cuda=True, requires=_deepspeed_combination,
               instead="remove deepspeed; several devices train with DDP through gpuConfig"),
    Capability("fsdp", active=lambda cfg: cfg.fsdp is not None, cuda=True, requires=_fsdp_alone,
               instead="remove fsdp; several devices train with DDP through gpuConfig"),
    _ray("ray_num_workers", active=lambda cfg: cfg.ray_num_workers is not None, requires=_ray_workers,
         instead="pip install 'tuneforge[ray]', or remove ray_num_workers (this host's devices train with DDP)"),
    *(_ray(name, requires=_with_ray, instead=f"remove {name}")
      for name in ("resources_per_worker", "placement_strategy", "ray_init_kwargs")),
)

CAPABILITY_BY_FIELD: dict[str, list[Capability]] = {}
for _capability in CAPABILITIES:
    CAPABILITY_BY_FIELD.setdefault(_capability.field, []).append(_capability)

# Path-valued fields and what each names; the planner resolves, confines and checks them in one place.
PATH_FIELDS: dict[str, str] = {
    "model_name_or_path": "model",  # a directory, a .gguf, a hub id or 'bundled'
    "adapter_name_or_path": "adapters",  # comma-separated directories (or hub ids)
    "dataset_dir": "directory",
    "cache_dir": "directory",
    "tokenized_path": "directory",
    "media_dir": "directory",
    "logging_dir": "directory",
    "deepspeed": "file",
    "reward_model": "directory",  # an rm run's output
    "resume_from_checkpoint": "checkpoint",  # a directory or 'last'
    "output_dir": "output",
}
PATH_LIST_FIELDS: tuple[str, ...] = ("dataset", "eval_dataset")  # names, files or folders
