"""A task names managed datasets as `name@v2` (pinned), `name` (the latest valid version, pinned at creation) or a
list with mixing ratios; they resolve to entries of HOME/datasets/dataset_info.json, which the worker reads."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneforge.data.sources import split_names
from tuneforge.schemas import ConfigProblem
from tuneforge.store import Dataset, DatasetVersion

if TYPE_CHECKING:  # tasks.planning imports this module for PinnedVersion
    from tuneforge.service.tasks.planning import TaskRequest

REFERENCE = re.compile(r"^(?P<name>[a-z0-9][a-z0-9_-]*)(?:@v?(?P<version>\d+))?$")


@dataclass(frozen=True)
class PinnedVersion:
    version_id: int
    reference: str
    weight: float | None = None


@dataclass(frozen=True)
class ResolvedReferences:
    """The dataset names with the managed ones pinned (`name@vN`), training arguments that find them (dataset_dir),
    and the references that could not be resolved."""

    dataset_path: str | None
    training_args: dict[str, Any]
    pinned: list[PinnedVersion] = field(default_factory=list)
    problems: list[ConfigProblem] = field(default_factory=list)


def apply_mixture(request: TaskRequest) -> tuple[TaskRequest, list[ConfigProblem]]:
    """`datasets: [{"name": "med-qa", "version": 2, "ratio": 0.8}, {"name": "general", "ratio": 0.2}]` becomes
    dataset `med-qa@v2,general` with interleave_probs [0.8, 0.2] (LLaMA-Factory's terms; interleave_under unless
    trainingArgs.mix_strategy says otherwise)."""
    if not request.datasets:
        return request, []
    problems: list[ConfigProblem] = []
    names: list[str] = []
    ratios: list[float | None] = []
    for index, item in enumerate(request.datasets):
        where = f"datasets[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            problems.append(ConfigProblem(where, 'must be {"name": ..., "version": N (optional), "ratio": x}'))
            continue
        version = item.get("version")
        names.append(item["name"] + (f"@v{version}" if version is not None else ""))
        ratio = item.get("ratio")
        if ratio is not None and (not isinstance(ratio, int | float) or ratio < 0):
            problems.append(ConfigProblem(f"{where}.ratio", "must be a number ≥ 0"))
        ratios.append(ratio)
    if request.dataset_path:
        problems.append(ConfigProblem("datasets", "give datasetPath or datasets, not both"))
    if any(r is None for r in ratios) and any(r is not None for r in ratios):
        problems.append(ConfigProblem("datasets", "give a ratio for every dataset or for none"))
    args = dict(request.training_args) if isinstance(request.training_args, dict) else {}
    given = [r for r in ratios if r is not None]
    if not problems and len(given) == len(ratios) > 1:  # a bad ratio (text) is reported, not divided
        args["interleave_probs"] = [r / (sum(given) or 1) for r in given]
        args.setdefault("mix_strategy", "interleave_under")
    return replace(request, dataset_path=",".join(names), training_args=args, datasets=None), problems


def resolve_references(session: Session, dataset_path: str | None, training_args: dict[str, Any],
                       datasets_root: Path) -> ResolvedReferences:
    items = split_names(dataset_path)
    pinned: list[PinnedVersion] = []
    problems: list[ConfigProblem] = []
    resolved: list[str] = []
    args = training_args if isinstance(training_args, dict) else {}
    weights = args.get("interleave_probs")
    for index, item in enumerate(items):
        match = REFERENCE.match(item)
        dataset = _managed(session, match["name"]) if match and not Path(item).exists() else None
        if match is None or dataset is None:
            resolved.append(item)
            continue
        version, problem = _pick_version(dataset, match["version"])
        if version is None:
            problems.append(problem or ConfigProblem("datasetPath", f"{item}: no usable version"))
            continue
        reference = f"{dataset.name}@v{version.version}"
        weight = weights[index] if isinstance(weights, list) and index < len(weights) else None
        pinned.append(PinnedVersion(version.id, reference, weight))
        resolved.append(reference)
    if not pinned:
        return ResolvedReferences(dataset_path, training_args, [], problems)
    args = dict(args)
    if args.get("dataset_dir") not in (None, str(datasets_root)):
        problems.append(ConfigProblem("trainingArgs.dataset_dir", "managed datasets live in their own folder; leave "
                                                                  "dataset_dir out when datasetPath names them"))
    args["dataset_dir"] = str(datasets_root)
    return ResolvedReferences(",".join(resolved), args, pinned, problems)


def _managed(session: Session, name: str) -> Dataset | None:
    return session.scalar(select(Dataset).where(Dataset.name == name))


def _pick_version(dataset: Dataset, wanted: str | None) -> tuple[DatasetVersion | None, ConfigProblem | None]:
    versions = {v.version: v for v in dataset.versions}
    if wanted is not None:
        version = versions.get(int(wanted))
        if version is None:
            known = ", ".join(f"v{n}" for n in versions)
            return None, ConfigProblem("datasetPath", f"dataset {dataset.name!r} has no version {wanted} ({known})")
    else:
        valid = [v for v in dataset.versions if v.status == "valid"]
        version = valid[-1] if valid else (dataset.versions[-1] if dataset.versions else None)
        if version is None:
            return None, ConfigProblem("datasetPath", f"dataset {dataset.name!r} has no version yet")
    if version.status == "validating":
        return None, ConfigProblem("datasetPath", f"{dataset.name}@v{version.version} is still being validated "
                                                  f"({version.progress:.0f}%); try again in a moment")
    if version.status != "valid":
        count = (version.report or {}).get("problem_count", "some")
        return None, ConfigProblem("datasetPath", f"{dataset.name}@v{version.version} is invalid ({count} problems, "
                                                  "see validateDataset); fix the file and upload a new version")
    return version, None
