"""The `deepspeed` value before and after path handling: a preset name (or LLaMA-Factory's file name for one) is
kept as a name, a file is read and checked like any other input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuneforge.schemas import ConfigProblem, TrainingConfig
from tuneforge.schemas.capabilities import ADAMW
from tuneforge.schemas.strategies import DEEPSPEED_PRESETS, deepspeed_preset_name, file_sharding, read_deepspeed_file


def canonical_deepspeed(raw: dict[str, Any], config_dir: Path | None, roots: list[Path] | None) -> dict[str, Any]:
    """`raw` with a preset-naming `deepspeed` value replaced by the preset's name (so no path lookup sees it)."""
    value = raw.get("deepspeed")
    if not isinstance(value, str) or not value.strip():
        return raw
    value = value.strip()
    preset = deepspeed_preset_name(value, _file_exists(value, config_dir, roots))
    return {**raw, "deepspeed": preset} if preset else raw


def _file_exists(value: str, config_dir: Path | None, roots: list[Path] | None) -> bool:
    """Whether a relative value names a file where the planner looks (absolute values are files anyway)."""
    path = Path(value).expanduser()
    if path.is_absolute() or ".." in path.parts:
        return True
    bases = roots if roots is not None else [config_dir or Path.cwd()]
    return any((base / path).is_file() for base in bases)


def deepspeed_file_problems(cfg: TrainingConfig) -> list[ConfigProblem]:
    """A config file must be a readable DeepSpeed JSON object; ZeRO-3 cannot shard quantized weights. Called only
    once the path itself passed the planner's checks (inside the allowed folders), so nothing else is read."""
    if not cfg.deepspeed or cfg.deepspeed in DEEPSPEED_PRESETS:
        return []
    config, problem = read_deepspeed_file(Path(cfg.deepspeed))
    if config is None or problem:
        presets = ", ".join(DEEPSPEED_PRESETS)
        return [ConfigProblem("deepspeed", f"{problem}; give a DeepSpeed JSON config or a preset ({presets})")]
    sharding = file_sharding(config)
    if sharding.offload_optimizer and cfg.optim not in ADAMW and "optimizer" not in config:
        return [ConfigProblem("deepspeed", f"{cfg.deepspeed} offloads the optimizer, and DeepSpeed then runs its own "
                                           f"CPU Adam in place of optim {cfg.optim}: use optim adamw_torch, or name "
                                           "the optimizer in the file's optimizer section")]
    if cfg.quantization_bit and sharding.weights:
        return [ConfigProblem("deepspeed", f"{cfg.deepspeed} is ZeRO-3, which shards the weights, and "
                                           f"{cfg.quantization_bit}-bit quantized weights cannot be sharded here: "
                                           "use ZeRO-2 (preset z2) for QLoRA")]
    return []
