"""Find the files behind dataset names: dataset_info.json keys, .json/.jsonl paths, or dataset directories.

A directory with train / valid / test files (train.jsonl, valid.jsonl, test.jsonl or .json) gives its valid
file as evaluation data; any other directory contributes all its .json/.jsonl files.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneforge.data.formats import FORMATTINGS
from tuneforge.data.reading import SUFFIXES

INFO_FILE = "dataset_info.json"
HUB_KEYS = ("hf_hub_url", "ms_hub_url", "om_hub_url", "script_url")


@dataclass
class DatasetSource:
    name: str
    files: list[Path]
    formatting: str | None = None  # None: detected from the first object of each file
    columns: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    split: str = "train"
    num_samples: int | None = None
    eval_files: list[Path] = field(default_factory=list)
    directory: Path | None = None  # a dataset folder: where its train / valid / test files are looked up
    ranking: bool = False  # dataset_info.json's `ranking: true`: chosen / rejected pairs (stages rm and dpo)


class DatasetNotFound(FileNotFoundError):
    def __init__(self, name: str, looked: list[str], known: list[str] | None = None) -> None:
        lines = [f"dataset {name!r} not found. Looked in:"] + [f"  - {place}" for place in looked]
        if known:
            lines.append(f"Datasets in {INFO_FILE} (closest first): {', '.join(known)}")
        lines.append("Give a dataset_info.json key, a .json/.jsonl file or a directory with train.jsonl.")
        super().__init__("\n".join(lines))
        self.name, self.looked, self.known = name, looked, known or []


class DatasetConfigError(ValueError):
    """A dataset description that cannot be used as written."""


def split_names(names: str | list[str] | None) -> list[str]:
    """LLaMA-Factory YAMLs write `dataset: a,b`; lists work too."""
    if names is None:
        return []
    items = names.split(",") if isinstance(names, str) else [part for name in names for part in name.split(",")]
    return [item.strip() for item in items if item.strip()]


def candidate_paths(relative: str, config_dir: Path | None) -> list[Path]:
    """Where a user path may live: as given if absolute, else next to the config file, then the working dir."""
    path = Path(relative).expanduser()
    if path.is_absolute():
        return [path]
    places = [config_dir / path] if config_dir is not None else []
    places.append(Path.cwd() / path)
    return list(dict.fromkeys(place.absolute() for place in places))


def resolve_dataset_sources(
    names: str | list[str] | None, dataset_dir: str = "data", config_dir: Path | None = None
) -> list[DatasetSource]:
    """One DatasetSource per name, in order; raises DatasetNotFound / DatasetConfigError."""
    dirs = candidate_paths(dataset_dir or ".", config_dir)
    info, info_dir = _load_info(dirs)
    return [_resolve_one(name, info, info_dir, dirs, config_dir) for name in split_names(names)]


def _load_info(dirs: list[Path]) -> tuple[dict[str, Any], Path | None]:
    for directory in dirs:
        info_path = directory / INFO_FILE
        if info_path.is_file():
            try:
                info = json.loads(info_path.read_text(encoding="utf-8-sig"))
            except json.JSONDecodeError as error:
                raise DatasetConfigError(f"{info_path}:{error.lineno}: invalid JSON at column {error.colno}: "
                                         f"{error.msg}") from error
            if not isinstance(info, dict):
                raise DatasetConfigError(f"{info_path}: expected a JSON object mapping names to datasets")
            return info, directory
    return {}, None


def _resolve_one(
    name: str, info: dict[str, Any], info_dir: Path | None, dirs: list[Path], config_dir: Path | None
) -> DatasetSource:
    if info_dir is not None and name in info:
        return _from_entry(name, info[name], info_dir)
    looked: list[str] = []
    for directory in dirs:
        info_path = directory / INFO_FILE
        note = f"has no entry {name!r}" if directory == info_dir else "no such file"
        looked.append(f"{info_path} ({note})")
    places = candidate_paths(name, config_dir) + [directory / name for directory in dirs]
    for place in dict.fromkeys(places):
        if place.is_file() and place.suffix.lower() in SUFFIXES:
            return DatasetSource(name, [place])
        if place.is_dir():
            return _from_directory(name, place, None, {}, {})
        looked.append(str(place))
    known = difflib.get_close_matches(name, list(info), n=len(info), cutoff=0.0) if info else []
    raise DatasetNotFound(name, looked, known)


def _from_entry(name: str, entry: Any, info_dir: Path) -> DatasetSource:
    where = f"{info_dir / INFO_FILE}: {name}"
    if not isinstance(entry, dict):
        raise DatasetConfigError(f"{where}: expected an object with 'file_name'")
    formatting = entry.get("formatting")
    if formatting is not None and formatting not in FORMATTINGS:
        raise DatasetConfigError(f"{where}: formatting: unknown value {formatting!r}; use one of "
                                 f"{', '.join(FORMATTINGS)}")
    columns, tags = entry.get("columns") or {}, entry.get("tags") or {}
    for key, value in (("columns", columns), ("tags", tags)):
        if not isinstance(value, dict):
            raise DatasetConfigError(f"{where}: {key}: expected an object mapping names to your columns")
    if (columns or tags) and formatting is None:
        formatting = "alpaca"  # LLaMA-Factory's default when columns are given
    place = _entry_path(name, entry, info_dir, where)
    source = _from_directory(name, place, formatting, columns, tags) if place.is_dir() else DatasetSource(
        name, [place], formatting, dict(columns), dict(tags))
    source.split = str(entry.get("split", "train"))
    source.num_samples = _num_samples(entry.get("num_samples"), where)
    source.ranking = bool(entry.get("ranking"))
    return source


def _entry_path(name: str, entry: dict, info_dir: Path, where: str) -> Path:
    relative = entry.get("file_name")
    hub = next((entry[key] for key in HUB_KEYS if entry.get(key)), None)
    if not relative and hub:
        local = info_dir / str(hub)
        if local.exists():
            return local
        raise DatasetConfigError(f"{where}: {hub!r} is a hub dataset: hub datasets need network access; "
                                 f"download it and point file_name at it")
    if not relative:
        raise DatasetConfigError(f"{where}: missing 'file_name' (the .json/.jsonl file or folder)")
    place = Path(str(relative)).expanduser()
    place = place if place.is_absolute() else (info_dir / place).absolute()
    if not place.exists():
        raise DatasetNotFound(name, [f"{place} (file_name of {where})"])
    return place


def _num_samples(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise DatasetConfigError(f"{where}: num_samples: expected a positive integer, got {value!r}")
    return value


def _from_directory(
    name: str, directory: Path, formatting: str | None, columns: dict, tags: dict
) -> DatasetSource:
    train, valid = _split_file(directory, "train"), _split_file(directory, "valid")
    if train is not None:
        files, eval_files = [train], [valid] if valid is not None else []
    else:
        files = sorted(p for p in directory.iterdir()
                       if p.is_file() and p.suffix.lower() in SUFFIXES and p.name != INFO_FILE)
        eval_files = []
    if not files:
        raise DatasetNotFound(name, [f"{directory} (no train.jsonl and no .json/.jsonl files inside)"])
    return DatasetSource(name, files, formatting, dict(columns), dict(tags), eval_files=eval_files,
                         directory=directory)


def _split_file(directory: Path, split: str) -> Path | None:
    for suffix in SUFFIXES:
        candidate = directory / f"{split}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def check_ranking(source: DatasetSource, kind: str) -> None:
    """As in LLaMA-Factory, a dataset_info.json entry says `ranking: true` for chosen / rejected pairs, and only the
    pairwise stages (rm, dpo) read those; a file named directly is read as the stage needs."""
    if source.ranking and kind != "preference":
        raise ValueError(f"dataset {source.name}: its dataset_info.json entry has ranking: true (chosen / rejected "
                         "pairs), which only stages rm and dpo train on; choose one of them or another dataset")
