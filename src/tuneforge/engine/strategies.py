"""DeepSpeed ZeRO and FSDP2 through the Trainer's own arguments, and a check that the Trainer really used them:
transformers falls back to plain DDP without a word in some setups (FSDP on a CPU device, for one)."""

from __future__ import annotations

from typing import Any

from tuneforge.engine.errors import EngineError
from tuneforge.schemas.strategies import DEEPSPEED_PRESETS, deepspeed_preset_config


def strategy_arguments(cfg: Any, checkpointing: bool) -> dict[str, Any]:
    """TrainingArguments keywords for the task's strategy (none for DDP)."""
    if cfg.deepspeed:
        preset = cfg.deepspeed in DEEPSPEED_PRESETS
        return {"deepspeed": deepspeed_preset_config(cfg.deepspeed) if preset else cfg.deepspeed}
    if cfg.fsdp:
        return {
            "fsdp": True,
            "fsdp_config": {
                "version": 2,
                "reshard_after_forward": cfg.fsdp != "shard_grad_op",
                "cpu_offload": cfg.fsdp == "full_shard_offload",
                # FSDP checkpoints inside its own wrapping; the Trainer's would all-gather the weights twice.
                "activation_checkpointing": checkpointing,
                "state_dict_type": "FULL_STATE_DICT",
            },
            "activation_checkpointing": False,
        }
    return {}


def check_strategy_applied(trainer: Any, cfg: Any) -> None:
    """Refuse to train under another strategy than the one asked for."""
    if cfg.deepspeed and not getattr(trainer, "is_deepspeed_enabled", False):
        raise EngineError(f"deepspeed: {cfg.deepspeed} was not taken up by the Trainer, which would train with "
                          "plain DDP instead", hint="run on CUDA GPUs with the deepspeed package installed")
    if cfg.fsdp and not getattr(trainer, "is_fsdp_enabled", False):
        raise EngineError(f"fsdp: {cfg.fsdp} was not taken up by the Trainer, which would train with plain DDP "
                          "instead", hint="FSDP2 needs CUDA GPUs and a distributed launch (gpuConfig)")
