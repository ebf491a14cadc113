"""fp32 / bf16 / fp16 as the hardware allows, with a clear error otherwise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tuneforge.engine.errors import EngineError


@dataclass(frozen=True)
class Precision:
    name: str  # "fp32" | "bf16" | "fp16" | "pure_bf16"
    device: str  # "cuda" | "cpu" | "mps"

    def load_dtype(self, finetuning_type: str = "full"):
        """Full fine-tuning in mixed precision keeps fp32 master weights. LoRA and freeze keep the frozen weights in
        the compute dtype (half the memory: what lets a 7B LoRA fit 24 GB) and upcast only the trainable ones."""
        import torch

        if self.name == "pure_bf16":
            return torch.bfloat16
        if finetuning_type != "full" and self.name in ("bf16", "fp16"):
            return self.compute_dtype
        return torch.float32

    @property
    def compute_dtype(self):
        import torch

        dtypes = {"bf16": torch.bfloat16, "pure_bf16": torch.bfloat16, "fp16": torch.float16}
        return dtypes.get(self.name, torch.float32)


def choose_precision(cfg: Any) -> Precision:
    import torch

    device = "cuda" if torch.cuda.is_available() and not cfg.use_cpu else "cpu"
    if cfg.fp16:
        if device != "cuda":
            raise EngineError("fp16 mixed precision needs a CUDA GPU; this host has none",
                              hint="set fp16: false (fp32) or bf16: true")
        return Precision("fp16", device)
    if cfg.bf16 or cfg.pure_bf16:
        if device == "cuda" and not torch.cuda.is_bf16_supported():
            raise EngineError("bf16 is not supported by this GPU (it needs Ampere or newer)",
                              hint="use fp16: true instead")
        return Precision("pure_bf16" if cfg.pure_bf16 else "bf16", device)
    return Precision("fp32", device)
