"""The planner's capability phase: every declared need of every active setting, checked against the host.

A problem names the field, why it cannot be honoured here, and what to choose instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from tuneforge.planning.host import HostFacts
from tuneforge.schemas import ConfigProblem, TrainingConfig
from tuneforge.schemas.capabilities import CAPABILITIES, PACKAGES, Capability


@dataclass(frozen=True)
class DataFacts:
    """What the planner learnt about the model and the data before this phase."""

    model_is_local: bool = True
    has_eval_data: bool = False
    context_length: int | None = None  # the model's max_position_embeddings, when its config could be read


def capability_problems(cfg: TrainingConfig, host: HostFacts, facts: DataFacts) -> list[ConfigProblem]:
    problems = _setting_problems(cfg, host, facts)
    for capability in CAPABILITIES:
        if not capability.is_active(cfg):
            continue
        reason = _reason(capability, cfg, host, facts)
        if reason:
            instead = f" — {capability.instead}" if capability.instead else ""
            problems.append(ConfigProblem(capability.field, f"{reason}{instead}"))
    return problems


def _setting_problems(cfg: TrainingConfig, host: HostFacts, facts: DataFacts) -> list[ConfigProblem]:
    """Settings whose effect depends on the model or the host as a whole: RoPE scaling stretches the context past
    the model's own (within it transformers leaves it unused); use_cpu steps aside from a GPU."""
    problems = []
    context = facts.context_length
    if cfg.rope_scaling and context and cfg.cutoff_len <= context:
        problems.append(ConfigProblem("rope_scaling", f"has no effect: cutoff_len {cfg.cutoff_len} fits the model's "
                                                      f"context of {context} tokens — remove rope_scaling, or raise "
                                                      "cutoff_len above the context"))
    if cfg.use_cpu and not host.has_cuda:
        problems.append(ConfigProblem("use_cpu", "has no effect: this host has no GPU, so the run trains on the CPU "
                                                 "anyway — remove use_cpu"))
    if cfg.ray_num_workers and (cfg.resources_per_worker or {}).get("GPU") and not host.has_cuda:
        problems.append(ConfigProblem("resources_per_worker", "asks for GPUs, and the run is planned for this "
                                                              "host's devices, which are CPUs — give {\"CPU\": 1}"))
    return problems


def _reason(capability: Capability, cfg: TrainingConfig, host: HostFacts, facts: DataFacts) -> str | None:
    """The first unmet need, in the order a user would fix them."""
    value = getattr(cfg, capability.field)
    if capability.unsupported:
        return f"not supported: {capability.unsupported}"
    if capability.stages and cfg.stage not in capability.stages:
        return f"is used by stage {' / '.join(capability.stages)} only, and this run's stage is {cfg.stage}"
    if capability.finetuning_types and cfg.finetuning_type not in capability.finetuning_types:
        wanted = " / ".join(capability.finetuning_types)
        return f"is used with finetuning_type {wanted} only, and this run's is {cfg.finetuning_type}"
    if capability.requires and (why := capability.requires(cfg)):
        return why
    if capability.hub_only and facts.model_is_local:
        return "applies to models downloaded from the Hugging Face Hub, and this model is local"
    if capability.eval_data and not facts.has_eval_data:
        return (f"is {value!r} but there is nothing to evaluate on: set val_size (e.g. 0.1), eval_dataset, or use "
                "a dataset folder with valid.jsonl")
    return _host_reason(capability, cfg, host, value)


def _host_reason(capability: Capability, cfg: TrainingConfig, host: HostFacts, value: object) -> str | None:
    on_gpu = host.has_cuda and not cfg.use_cpu
    modules = capability.packages(cfg)
    needs_cuda = capability.cuda or any(PACKAGES[m].cuda_only for m in modules)
    if needs_cuda and not on_gpu:
        where = "use_cpu is set" if host.has_cuda else f"this host has no NVIDIA GPU ({host.describe()})"
        return f"{value!r} needs an NVIDIA GPU with CUDA, and {where}"
    missing = [PACKAGES[m].install for m in modules if m not in host.packages]
    if missing:
        return f"{value!r} needs the {', '.join(missing)} package, which is not installed " \
               f"(pip install {' '.join(missing)})"
    have = host.min_cuda_capability
    if capability.min_cuda_capability and on_gpu and have and have < capability.min_cuda_capability:
        need = ".".join(map(str, capability.min_cuda_capability))
        return f"{value!r} needs a GPU of compute capability {need} or newer (Ampere), and this one is " \
               f"{have[0]}.{have[1]}"
    return None
