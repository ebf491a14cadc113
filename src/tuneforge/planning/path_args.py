"""Path-valued training arguments: made absolute where the service found them (the worker runs in its run
directory, so a relative path would point elsewhere there) and confined to the allowed folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuneforge.data.sources import split_names
from tuneforge.modelref.locate import looks_like_hub_id
from tuneforge.planning.paths import confine
from tuneforge.schemas import ConfigProblem
from tuneforge.schemas.strategies import DEEPSPEED_PRESETS

SINGLE = ("model_name_or_path", "adapter_name_or_path", "dataset_dir", "deepspeed", "cache_dir", "tokenized_path",
          "media_dir", "resume_from_checkpoint", "logging_dir")
LISTS = ("dataset", "eval_dataset")
# Relative values of these are looked up in the allowed folders; the model and the datasets have their own
# lookups (hub ids, dataset_info.json names), and folders the run writes are placed under the outputs folder.
ROOTED = ("adapter_name_or_path", "deepspeed", "resume_from_checkpoint", "dataset_dir", "media_dir")


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


def root_relative(raw: dict[str, Any], roots: list[Path]) -> tuple[dict[str, Any], list[ConfigProblem]]:
    """Confined mode (the server): a relative path is looked up in each allowed folder, never in the working
    directory or the run directory. A value found nowhere is a problem, unless it can be a hub id (adapters)."""
    out, problems = dict(raw), []
    for key in ROOTED:
        value = out.get(key)
        if not isinstance(value, str) or not value or (value == "last" and key == "resume_from_checkpoint"):
            continue
        if key == "dataset_dir" and value == "data":
            continue  # the default: only used when a dataset name needs dataset_info.json (checked there)
        if key == "deepspeed" and value in DEEPSPEED_PRESETS:
            continue  # a preset's name, not a file
        parts = [part.strip() for part in value.split(",")] if key == "adapter_name_or_path" else [value]
        resolved = [_in_roots(part, roots, key) for part in parts]
        problems += [problem for _, problem in resolved if problem]
        out[key] = ",".join(path for path, _ in resolved)
    for key in LISTS:
        value = out.get(key)
        if isinstance(value, str | list) and value:
            resolved = [_in_roots(part, roots, key) if _is_path(part) else (part, None)
                        for part in split_names(value)]
            problems += [problem for _, problem in resolved if problem]
            parts = [path for path, _ in resolved]
            out[key] = ",".join(parts) if isinstance(value, str) else parts
    return out, problems


def _is_path(item: str) -> bool:
    """A dataset item that names a file or folder (not a dataset_info.json name)."""
    return "/" in item or Path(item).suffix in (".json", ".jsonl") or item.startswith(("~", "."))


def _in_roots(value: str, roots: list[Path], key: str) -> tuple[str, ConfigProblem | None]:
    path = Path(value).expanduser()
    if path.is_absolute():
        return value, None
    if ".." in path.parts:
        return value, ConfigProblem(key, f"{value!r} contains '..'; give a path inside the allowed folders")
    for root in roots:
        if (root / path).exists():
            return str((root / path).resolve()), None
    if key == "adapter_name_or_path" and looks_like_hub_id(value):
        return value, None
    looked = ", ".join(str(root / path) for root in roots)
    return value, ConfigProblem(key, f"{value!r} was not found in the allowed folders (looked at {looked}); give "
                                     "an absolute path inside them")


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
