"""pt: continued pre-training on plain text, every token a target, packed into cutoff_len blocks by default.

The data layer reads and packs text by the stage's record kind and packing default; the training is next-token
prediction, as for sft.
"""

from __future__ import annotations

from tuneforge.engine.stages._language_model import build_trainer, extra_metrics, prepare_data
from tuneforge.schemas.stages import stage_info

STAGE = stage_info("pt")

__all__ = ["STAGE", "build_trainer", "extra_metrics", "prepare_data"]
