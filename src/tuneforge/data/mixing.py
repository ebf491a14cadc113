"""Mix several datasets into one list: concatenate, or interleave them (optionally by probabilities).

Mixing a general dataset into a domain one keeps the model's general abilities (against catastrophic
forgetting); `interleave_probs` sets the ratio.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Generic, TypeVar

R = TypeVar("R")
STRATEGIES = ("concat", "interleave_under", "interleave_over")


@dataclass
class MixResult(Generic[R]):
    records: list[R]
    counts: list[int]  # samples taken from each group (repeats counted), in group order


def mix_records(
    groups: list[list[R]], strategy: str = "concat", probs: list[float] | None = None, seed: int = 42
) -> MixResult[R]:
    """interleave_under stops when the first group runs out (undersampling the larger ones);
    interleave_over goes on, restarting exhausted groups, until every group has been used whole.
    Without probabilities groups take turns; with them each draw picks a group by its probability."""
    if strategy not in STRATEGIES:
        raise ValueError(f"mix_strategy: unknown value {strategy!r}; use one of {', '.join(STRATEGIES)}")
    if strategy == "concat" or len(groups) <= 1:
        return MixResult([record for group in groups for record in group], [len(group) for group in groups])
    weights = _check_probs(probs, len(groups)) if probs is not None else None
    if any(not group for group in groups):
        empty = [index for index, group in enumerate(groups) if not group]
        raise ValueError(f"dataset: group(s) {empty} have no samples; cannot interleave an empty dataset")
    return _interleave(groups, strategy == "interleave_over", weights, random.Random(seed))


def _check_probs(probs: list[float], n: int) -> list[float]:
    if len(probs) != n:
        raise ValueError(f"interleave_probs: {len(probs)} values for {n} datasets; give one per dataset")
    if any(p < 0 for p in probs) or sum(probs) <= 0:
        raise ValueError("interleave_probs: values must be >= 0 and not all 0")
    total = sum(probs)
    return [p / total for p in probs]


def _interleave(
    groups: list[list[R]], oversample: bool, weights: list[float] | None, rng: random.Random
) -> MixResult[R]:
    positions = [0] * len(groups)
    counts = [0] * len(groups)
    # groups that can never be drawn (probability 0) count as seen, or oversampling would never end
    seen = [weights is not None and weights[index] == 0 for index in range(len(groups))]
    records: list[R] = []
    turn = 0
    while True:
        if weights is None:
            index, turn = turn % len(groups), turn + 1
        else:
            index = rng.choices(range(len(groups)), weights)[0]
        if positions[index] == len(groups[index]):
            seen[index] = True
            if not oversample or all(seen):
                break
            positions[index] = 0
        records.append(groups[index][positions[index]])
        positions[index] += 1
        counts[index] += 1
        if positions[index] == len(groups[index]):
            seen[index] = True
            if oversample and all(seen):
                break
    return MixResult(records, counts)
