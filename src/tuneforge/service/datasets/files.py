"""Where dataset versions live (HOME/datasets/<name>/v<N>/, never changed after writing) and how files get there:
an upload stream, a server path inside the allowed roots, or an object-store URI through fsspec (s3://, gs://, …)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from tuneforge.data.reading import SUFFIXES
from tuneforge.data.sources import INFO_FILE
from tuneforge.planning.paths import is_inside, is_plain_name, uri_problem

CHUNK = 1024 * 1024
SPLITS = ("train", "valid", "test")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class DatasetFileError(ValueError):
    """A file the dataset cannot take (wrong suffix, nothing inside, unreachable URI)."""


@dataclass(frozen=True)
class StagedFiles:
    """Files written to a staging folder, with the hash of their names and bytes."""

    folder: Path
    names: list[str]
    content_hash: str
    size_bytes: int

    def splits(self) -> dict[str, list[str]]:
        """train / valid / test by file name; any other file is training data."""
        out: dict[str, list[str]] = {}
        for name in self.names:
            stem = Path(name).stem.lower()
            out.setdefault(stem if stem in SPLITS else "train", []).append(name)
        return out


def staging_dir(datasets_root: Path) -> Path:
    datasets_root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".staging-", dir=datasets_root))


def safe_file_name(name: str, field: str = "files") -> str:
    base = _SAFE_NAME.sub("_", Path(name).name).strip("._") or "data"
    if Path(base).suffix.lower() not in SUFFIXES:
        raise DatasetFileError(f"{field}: {name!r} is not a .json or .jsonl file")
    return base


def write_stream(folder: Path, name: str, chunks: Iterable[bytes]) -> Path:
    target = folder / safe_file_name(name)
    if target.exists():
        raise DatasetFileError(f"files: {target.name!r} was given twice")
    with target.open("wb") as out:
        for chunk in chunks:
            out.write(chunk)
    return target


def read_chunks(handle: BinaryIO) -> Iterator[bytes]:
    while chunk := handle.read(CHUNK):
        yield chunk


def copy_server_path(folder: Path, source: Path, roots: list[Path]) -> None:
    """A file, or the .json/.jsonl files of a folder (a train / valid / test layout), copied in. Every file read must
    resolve inside `roots`: a link in an allowed folder to a file elsewhere is refused, never copied."""
    files = [source] if source.is_file() else sorted(p for p in source.iterdir()
                                                      if p.is_file() and p.suffix.lower() in SUFFIXES
                                                      and p.name != INFO_FILE)
    if not files:
        raise DatasetFileError(f"path: {source} holds no .json or .jsonl file")
    checked = [(path, path.resolve()) for path in files]  # the file read is the file checked, not a later link
    for path, real in checked:
        if not is_inside(real, roots):
            raise DatasetFileError(f"path: {path} links to {real}, outside the allowed folders; copy the file itself "
                                   "into the folder instead of linking to it")
    for path, real in checked:
        with real.open("rb") as handle:
            write_stream(folder, path.name, read_chunks(handle))


def version_paths(folder: Path, by_split: dict[str, list[str]]) -> dict[str, list[Path]]:
    """A stored version's files by split. The names come from the database, yet each is still read as a name: a
    plain file directly in the version's folder, not a path and not a link placed there since."""
    real_folder = folder.resolve()
    paths: dict[str, list[Path]] = {}
    for split, names in by_split.items():
        for name in names:
            path = folder / name
            if not is_plain_name(name) or path.is_symlink() or path.resolve().parent != real_folder:
                raise DatasetFileError(f"files: {name!r} is not a file of {folder}; upload the dataset again")
            paths.setdefault(split, []).append(path)
    return paths


def copy_uri(folder: Path, uri: str) -> None:
    """`s3://bucket/prefix/train.jsonl` or a prefix with several files, through fsspec (s3fs etc. when installed)."""
    import fsspec

    if problem := uri_problem(uri):
        raise DatasetFileError(f"uri: {problem}")
    try:
        fs, path = fsspec.core.url_to_fs(uri)
        paths = [path] if fs.isfile(path) else [p for p in fs.find(path) if Path(p).suffix.lower() in SUFFIXES]
        if not paths:
            raise DatasetFileError(f"uri: {uri} holds no .json or .jsonl file")
        for remote in sorted(paths):
            with fs.open(remote, "rb") as handle:
                write_stream(folder, Path(remote).name, read_chunks(handle))
    except ImportError as exc:
        raise DatasetFileError(f"uri: {uri}: {exc} (for s3:// install s3fs: pip install tuneforge[s3])") from exc
    except DatasetFileError:
        raise
    except Exception as exc:  # each backend raises its own errors (network, auth, not found): all are the URI's
        raise DatasetFileError(f"uri: {uri} cannot be read: {type(exc).__name__}: {exc}") from exc


def seal(folder: Path) -> StagedFiles:
    """Hash names and bytes (the version's identity: the same files uploaded again are the same version)."""
    digest = hashlib.sha256()
    names = sorted(p.name for p in folder.iterdir() if p.is_file())
    if not names:
        raise DatasetFileError("files: no file was given")
    size = 0
    for name in names:
        digest.update(name.encode() + b"\0")
        with (folder / name).open("rb") as handle:
            for chunk in read_chunks(handle):
                digest.update(chunk)
                size += len(chunk)
    return StagedFiles(folder, names, digest.hexdigest(), size)


def publish(staged: StagedFiles, target: Path) -> Path:
    """Move the staged folder to its final place and make its files read-only (immutable versions)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged.folder, target)
    for name in staged.names:
        (target / name).chmod(0o444)
    return target


def discard(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def write_dataset_info(datasets_root: Path, entries: dict[str, dict[str, Any]]) -> None:
    """HOME/datasets/dataset_info.json names every valid version `name@vN`, so a task (and the engine's own
    dataset loader) finds it by that name, and mixes several of them like LLaMA-Factory datasets."""
    datasets_root.mkdir(parents=True, exist_ok=True)
    tmp = datasets_root / f".{INFO_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(entries, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, datasets_root / INFO_FILE)
