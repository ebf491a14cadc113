"""The dataset a model job reads (an evaluation's held-out samples, an export's calibration samples), resolved the
way a task resolves its datasets: managed datasets pinned to a version, one bundled dataset, or files and folders
inside the allowed folders (every file they hold confined, symlinks resolved)."""

from __future__ import annotations

import json
from dataclasses import replace

from sqlalchemy.orm import Session

from tuneforge.data.sources import split_names
from tuneforge.planning.paths import confine_tree
from tuneforge.schemas import ConfigProblem
from tuneforge.service.datasets.refs import resolve_references
from tuneforge.service.errors import InvalidInput
from tuneforge.service.tasks.planning import BUNDLED_DATASETS
from tuneforge.settings import Settings


def job_dataset(session: Session, settings: Settings, names: list[str], field: str) -> tuple[str, str]:
    """(dataset, dataset_dir) for a job's spec; InvalidInput names `field` when a name is none of the above."""
    if not names:
        raise InvalidInput.of([ConfigProblem(field, "required: name a dataset")])
    if len(names) == 1 and names[0] in _bundled_names():
        return names[0], str(BUNDLED_DATASETS)
    if bundled := [name for name in names if name in _bundled_names()]:
        raise InvalidInput.of([ConfigProblem(field, f"{bundled[0]} is a bundled dataset, which is used on its own: "
                                                    "name it alone, or register its file as a dataset to combine it")])
    managed_root = settings.home / "datasets"
    references = resolve_references(session, ",".join(names), {}, managed_root)
    if references.problems:
        raise InvalidInput.of([replace(p, field=field) for p in references.problems])
    managed = {p.reference for p in references.pinned}
    resolved = []
    for name in split_names(references.dataset_path):
        if name not in managed:
            path, problem = confine_tree(name, settings.roots, field)  # and every file it holds
            if problem or path is None or not path.exists():
                raise InvalidInput.of([problem or ConfigProblem(field, f"{name}: no managed dataset, bundled "
                                                                       "dataset or file of that name")])
            name = str(path)
        resolved.append(name)
    return ",".join(resolved), str(managed_root)


def _bundled_names() -> set[str]:
    return set(json.loads((BUNDLED_DATASETS / "dataset_info.json").read_text(encoding="utf-8")))
