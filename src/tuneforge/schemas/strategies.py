"""How a task spreads over its devices: DDP (the default), DeepSpeed ZeRO (a named preset or a config file) or
FSDP2, and what each shards — the planner's memory estimate and the worker's Trainer arguments both read it here.

LLaMA-Factory users name its shipped DeepSpeed files (`examples/deepspeed/ds_z3_config.json`); those names map to
the presets below when no such file exists where the task is planned, so a LLaMA-Factory config works unchanged.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_DEEPSPEED_FILE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Sharding:
    """What each device holds a 1/N share of (N devices), and what lives in CPU memory instead."""

    name: str  # for the plan: "DDP", "DeepSpeed ZeRO-3 (z3)", "FSDP2 full_shard"
    optimizer: bool = False
    gradients: bool = False
    weights: bool = False
    offload_optimizer: bool = False
    offload_weights: bool = False
    master_in_optimizer: bool = False  # DeepSpeed: 16-bit weights on the device, fp32 master copy with the optimizer


@dataclass(frozen=True)
class ZeroPreset:
    stage: int
    offload_optimizer: bool = False
    offload_weights: bool = False


DEEPSPEED_PRESETS: dict[str, ZeroPreset] = {
    "z0": ZeroPreset(0),
    "z2": ZeroPreset(2),
    "z2_offload": ZeroPreset(2, offload_optimizer=True),
    "z3": ZeroPreset(3),
    "z3_offload": ZeroPreset(3, offload_optimizer=True, offload_weights=True),
}
LLAMAFACTORY_DEEPSPEED_FILES = {f"ds_{name}_config.json": name for name in DEEPSPEED_PRESETS}
FSDP_MODES = ("full_shard", "shard_grad_op", "full_shard_offload")
DDP = Sharding("DDP")


def deepspeed_preset_name(value: str, file_exists: bool) -> str | None:
    """The preset a `deepspeed` value names: a preset's own name, or LLaMA-Factory's relative file name for it when
    no such file exists (a user's edited copy of that file is read as a file)."""
    if value in DEEPSPEED_PRESETS:
        return value
    if not file_exists and not Path(value).expanduser().is_absolute():  # an absolute path is always a file
        return LLAMAFACTORY_DEEPSPEED_FILES.get(Path(value).name)
    return None


def zero_sharding(stage: int, offload_optimizer: bool, offload_weights: bool, name: str) -> Sharding:
    """ZeRO-1 shards the optimizer state, ZeRO-2 the gradients too, ZeRO-3 the weights too."""
    return Sharding(name, optimizer=stage >= 1, gradients=stage >= 2, weights=stage >= 3,
                    offload_optimizer=offload_optimizer and stage >= 1,
                    offload_weights=offload_weights and stage >= 3, master_in_optimizer=True)


def fsdp_sharding(mode: str) -> Sharding:
    """full_shard reshards the weights after each forward (ZeRO-3's layout); shard_grad_op keeps them gathered
    (ZeRO-2's). Offload keeps the sharded parameters, gradients and optimizer state in CPU memory."""
    offload = mode == "full_shard_offload"
    return Sharding(f"FSDP2 {mode}", optimizer=True, gradients=True, weights=mode != "shard_grad_op",
                    offload_optimizer=offload, offload_weights=offload)


def read_deepspeed_file(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(the config, None) or (None, what is wrong with the file). Reads a regular file only, at most
    MAX_DEEPSPEED_FILE_BYTES of it (a device file or a FIFO would never end); never echoes the file's content."""
    try:
        with path.open("rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                return None, f"{path} is not a regular file"
            data = file.read(MAX_DEEPSPEED_FILE_BYTES + 1)
    except OSError as exc:
        return None, f"{path} cannot be read: {exc.strerror or exc}"
    if len(data) > MAX_DEEPSPEED_FILE_BYTES:
        return None, f"{path} is larger than {MAX_DEEPSPEED_FILE_BYTES // 1024} KiB: not a DeepSpeed config"
    try:
        config = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None, f"{path} is not a JSON file"
    if not isinstance(config, dict):
        return None, f"{path} holds a JSON {type(config).__name__}, not a DeepSpeed config object"
    return config, _zero_problem(config, path)


def _zero_problem(config: dict[str, Any], path: Path) -> str | None:
    zero = config.get("zero_optimization", {})
    if not isinstance(zero, dict):
        return f"{path}: zero_optimization must be an object with a stage"
    if zero.get("stage", 0) not in (0, 1, 2, 3):
        return f"{path}: zero_optimization.stage must be one of DeepSpeed's ZeRO stages 0, 1, 2 and 3"
    for key in ("offload_optimizer", "offload_param"):
        if not isinstance(zero.get(key, {}), dict):
            return f"{path}: zero_optimization.{key} must be an object such as {{\"device\": \"cpu\"}}"
    return None


def file_sharding(config: dict[str, Any]) -> Sharding:
    """The layout of a config that read_deepspeed_file accepted."""
    zero = config.get("zero_optimization") or {}
    stage = int(zero.get("stage", 0))

    def offloads(key: str) -> bool:
        return (zero.get(key) or {}).get("device", "none") in ("cpu", "nvme")

    return zero_sharding(stage, offloads("offload_optimizer"), offloads("offload_param"),
                         f"DeepSpeed ZeRO-{stage} (config file)")


def sharding_of(deepspeed: str | None, fsdp: str | None) -> Sharding:
    """The layout of a planned config (its deepspeed value is a preset name or a readable file by then)."""
    if fsdp:
        return fsdp_sharding(fsdp)
    if not deepspeed:
        return DDP
    preset = DEEPSPEED_PRESETS.get(deepspeed)
    if preset is not None:
        return zero_sharding(preset.stage, preset.offload_optimizer, preset.offload_weights,
                             f"DeepSpeed ZeRO-{preset.stage} ({deepspeed})")
    config, problem = read_deepspeed_file(Path(deepspeed))
    return file_sharding(config) if config is not None and problem is None else DDP


def deepspeed_preset_config(name: str) -> dict[str, Any]:
    """The DeepSpeed config of a preset. "auto" values are filled by transformers from the run's own arguments
    (batch size, accumulation, clipping, precision, optimizer sizes), so the two can never disagree."""
    preset = DEEPSPEED_PRESETS[name]
    zero: dict[str, Any] = {"stage": preset.stage}
    if preset.stage >= 2:
        zero.update(overlap_comm=False, contiguous_gradients=True, reduce_bucket_size="auto")
    if preset.stage == 2:
        zero.update(allgather_partitions=True, allgather_bucket_size=5e8, reduce_scatter=True)
    if preset.stage == 3:
        zero.update(sub_group_size=1e9, stage3_prefetch_bucket_size="auto",
                    stage3_param_persistence_threshold="auto", stage3_max_live_parameters=1e9,
                    stage3_max_reuse_distance=1e9, stage3_gather_16bit_weights_on_model_save=True)
    if preset.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    if preset.offload_weights:
        zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    return {
        "train_batch_size": "auto", "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto", "gradient_clipping": "auto",
        "zero_allow_untested_optimizer": True,
        # fp16 with dynamic loss scaling (loss_scale 0); each half is switched on by the run's own precision.
        "fp16": {"enabled": "auto", "loss_scale": 0, "loss_scale_window": 1000, "initial_scale_power": 16,
                 "hysteresis": 2, "min_loss_scale": 1},
        "bf16": {"enabled": "auto"},
        "zero_optimization": zero,
    }
