"""Padding-free batches: the samples of a batch are concatenated into one row with per-sample position ids.

transformers turns position ids that restart at 0 into a block-diagonal causal mask (SDPA / eager) or varlen
kernels (flash attention), so no compute is spent on padding and no token attends across samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

IGNORE_INDEX = -100


@dataclass
class PaddingFreeCollator:
    """Flattens a list of samples {input_ids, labels[, position_ids]} into a [1, total] batch."""

    def __call__(self, samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        input_ids: list[int] = []
        labels: list[int] = []
        position_ids: list[int] = []
        for sample in samples:
            ids = list(sample["input_ids"])
            sample_labels = list(sample["labels"])
            # The first token of a sample is never a target: nothing predicts across a boundary.
            sample_labels[0] = IGNORE_INDEX
            positions = sample.get("position_ids")
            positions = list(positions) if positions is not None else list(range(len(ids)))
            input_ids += ids
            labels += sample_labels
            position_ids += positions
        return {
            "input_ids": torch.tensor([input_ids], dtype=torch.long),
            "labels": torch.tensor([labels], dtype=torch.long),
            "position_ids": torch.tensor([position_ids], dtype=torch.long),
        }


def as_feature(sample: Any) -> dict[str, Any]:
    """EncodedSample / PackedSample (dataclasses) or dicts → the dict the collator reads."""
    if isinstance(sample, dict):
        return sample
    feature = {"input_ids": sample.input_ids, "labels": sample.labels}
    if getattr(sample, "position_ids", None) is not None:
        feature["position_ids"] = sample.position_ids
    return feature


class SampleDataset:
    """A list of encoded samples as a map-style dataset (no `datasets` import: it costs seconds at start)."""

    def __init__(self, samples: Sequence[Any]) -> None:
        self.samples = [as_feature(s) for s in samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.samples[index]
