"""Pack several short samples into rows of at most cutoff_len tokens, without attention across them.

Each sample keeps its own position ids (restarting at 0), from which transformers builds a block-diagonal
causal mask; the first label of each sample is ignored so nothing is predicted across a boundary.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence
from dataclasses import dataclass

from tuneforge.data.tokenize import IGNORE_INDEX, EncodedSample


@dataclass
class PackedSample:
    input_ids: list[int]
    labels: list[int]
    position_ids: list[int]

    @property
    def num_samples(self) -> int:
        return sum(1 for position in self.position_ids if position == 0)


def plan_bins(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Group sample indices into bins of total length <= capacity, longest first, each into the fullest
    bin it still fits (best-fit decreasing; deterministic: ties keep input order)."""
    order = sorted(range(len(lengths)), key=lambda index: (-lengths[index], index))
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (free space, bin number), sorted, for a log-time search
    for index in order:
        length = min(lengths[index], capacity)
        slot = bisect.bisect_left(free, (length, -1))
        if slot == len(free):
            bins.append([index])
            bisect.insort(free, (capacity - length, len(bins) - 1))
            continue
        space, number = free.pop(slot)
        bins[number].append(index)
        bisect.insort(free, (space - length, number))
    return bins


def pack_samples(samples: Sequence[EncodedSample], cutoff_len: int, seed: int = 42) -> list[PackedSample]:
    """Rows of packed samples; row order is shuffled by `seed` so batches do not go from long to short."""
    bins = plan_bins([min(len(sample.input_ids), cutoff_len) for sample in samples], cutoff_len)
    random.Random(seed).shuffle(bins)
    return [_pack([samples[index] for index in sorted(members)], cutoff_len) for members in bins]


def _pack(members: list[EncodedSample], cutoff_len: int) -> PackedSample:
    input_ids: list[int] = []
    labels: list[int] = []
    position_ids: list[int] = []
    for sample in members:
        ids = sample.input_ids[:cutoff_len]
        input_ids += ids
        labels += [IGNORE_INDEX, *sample.labels[1:len(ids)]]
        position_ids += range(len(ids))
    return PackedSample(input_ids, labels, position_ids)
