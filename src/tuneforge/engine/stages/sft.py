"""sft: supervised fine-tuning on chat records, the loss on the answers only (prompt tokens masked).

The data layer masks the prompt by the stage's record kind (chat); the training is next-token prediction.
"""

from __future__ import annotations

from tuneforge.engine.stages._language_model import build_trainer, extra_metrics, prepare_data
from tuneforge.schemas.stages import stage_info

STAGE = stage_info("sft")

__all__ = ["STAGE", "build_trainer", "extra_metrics", "prepare_data"]
