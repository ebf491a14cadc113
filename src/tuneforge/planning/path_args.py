"""Path-valued training arguments: made absolute where the service found them (the worker runs in its run
directory, so a relative path would point elsewhere there) and confined to the allowed folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuneforge.data.sources import split_names
from tuneforge.planning.paths import confine
from tuneforge.schemas import ConfigProblem

SINGLE = ("model_name_or_path", "adapter_name_or_path", "dataset_dir", "deepspeed", "cache_dir", "tokenized_path",
          "media_dir", "resume_from_checkpoint", "logging_dir")
LISTS = ("dataset", "eval_dataset")
FIELD_NAMES = {"model_name_or_path": "baseModel", "dataset": "datasetPath"}


def absolutize(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative paths that exist under `base` become absolute; names (dataset_info keys, hub ids) stay as given."""
    out = dict(raw)
    for key in SINGLE:
        if isinstance(out.get(key), str):
            out[key] = _absolute(out[key], base)
    for key in LISTS:
        value = out.get(key)
        if isinstance(value, str | list) and value:
            parts = [_absolute(part, base) for part in split_names(value)]
            out[key] = ",".join(parts) if isinstance(value, str) else parts
    return out


def path_problems(raw: dict[str, Any], roots: list[Path], exempt: list[Path]) -> list[ConfigProblem]:
    """Absolute paths among the path arguments that lie outside the allowed folders (`exempt`: shipped data)."""
    problems = []
    for key in (*SINGLE, *LISTS):
        value = raw.get(key)
        values = split_names(value) if key in LISTS else [value]
        for item in values:
            if not isinstance(item, str) or not item.startswith(("/", "~")):
                continue
            if any(Path(item).expanduser().resolve().is_relative_to(e) for e in exempt):
                continue
            _, problem = confine(item, roots, key)
            if problem:
                problems.append(problem)
    return problems


def _absolute(value: str, base: Path) -> str:
    if not value or value in ("last", "true", "false") or Path(value).expanduser().is_absolute():
        return value
    candidate = base / value
    return str(candidate.resolve()) if candidate.exists() else value
