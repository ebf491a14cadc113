"""Import a base model from an object store (`s3://bucket/models/qwen2.5-0.5b/`, `gs://…`, any fsspec URI) into
HOME/registry/<name>: a background copy with byte progress on the model's row; the model is usable once `ready`."""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tuneforge.planning.paths import uri_problem

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

log = logging.getLogger(__name__)

CHUNK = 8 * 1024 * 1024
MODEL_SUFFIXES = {".json", ".safetensors", ".bin", ".model", ".gguf", ".txt", ".py", ".jinja", ".tiktoken", ".md"}
ModelFiles = list[tuple[str, str, int]]  # (remote path, name relative to the model folder, size in bytes)


class ModelImportError(Exception):
    """The URI cannot be read, or holds no model: the message says which and what to do."""


def is_object_store_uri(source: str) -> bool:
    return "://" in source


def list_model_files(uri: str) -> tuple[AbstractFileSystem, ModelFiles]:
    """(filesystem, [(remote path, relative name, size)]): the model files under the URI, checked before any copy."""
    import fsspec

    if problem := uri_problem(uri):
        raise ModelImportError(problem)
    try:
        fs, root = fsspec.core.url_to_fs(uri)
        found = fs.find(root, detail=True)
    except ImportError as exc:
        raise ModelImportError(f"{uri}: {exc} (for s3:// install s3fs: pip install tuneforge[s3])") from exc
    except (OSError, ValueError) as exc:
        raise ModelImportError(f"{uri} cannot be read: {exc}") from exc
    files = [(path, path[len(root):].lstrip("/") or Path(path).name, int(info.get("size") or 0))
             for path, info in sorted(found.items())
             if info.get("type", "file") == "file" and Path(path).suffix.lower() in MODEL_SUFFIXES]
    unsafe = [name for _, name, _ in files if name.startswith("/") or ".." in Path(name).parts]
    if unsafe:
        raise ModelImportError(f"{uri}: refusing file names that leave the model folder: {unsafe[0]!r}")
    names = {Path(name).name for _, name, _ in files}
    if "config.json" not in names and not any(name.endswith(".gguf") for name in names):
        raise ModelImportError(f"{uri} holds no model: no config.json (a Hugging Face model folder) or .gguf file")
    return fs, files


def copy_model(fs: AbstractFileSystem, files: ModelFiles, target: Path, on_progress: Callable[[float], None]) -> None:
    """Copy into target/.partial, then rename: a failed or interrupted import never leaves a half model in place."""
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    total = max(1, sum(size for _, _, size in files))
    done = 0
    try:
        for remote, name, _ in files:
            destination = partial / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            with fs.open(remote, "rb") as source, destination.open("wb") as out:
                while chunk := source.read(CHUNK):
                    out.write(chunk)
                    done += len(chunk)
                    on_progress(min(99.9, 100.0 * done / total))
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)


def start_import(work: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=work, name="tuneforge-model-import", daemon=True)
    thread.start()
    return thread
