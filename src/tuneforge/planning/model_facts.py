"""The planner's model phase: where the base model is, its tokenizer file and its shape, without loading it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneforge.modelref import ModelNotFound, ModelSource, check_hub_model, locate_model
from tuneforge.planning.paths import confine_tree
from tuneforge.schemas import ConfigProblem

BUNDLED_CONVERTED = "smollm2-135m-instruct"  # the bundled GGUF's safetensors copy in the model cache


@dataclass(frozen=True)
class ModelFacts:
    source: ModelSource
    tokenizer_file: Path | None  # tokenizer.json, when one is at hand without loading anything
    shape: Any  # modelref.shape.ModelShape, or None when the config could not be read

    @property
    def is_local(self) -> bool:
        return self.source.is_local


def locate(raw: dict[str, Any], config_dir: Path | None, roots: list[Path] | None, models_cache: Path | None
           ) -> tuple[ModelFacts | None, list[ConfigProblem]]:
    name = raw.get("model_name_or_path")
    if not isinstance(name, str) or not name:
        return None, []  # the parse phase reports a missing model
    gguf = raw.get("gguf_file") if isinstance(raw.get("gguf_file"), str) else None
    try:
        source = locate_model(name, config_dir=config_dir, gguf_file=gguf)
        if not source.is_local:
            check_hub_model(source.path, config_dir)
    except ModelNotFound as exc:
        hint = f" ({exc.hint})" if exc.hint else ""
        return None, [ConfigProblem("model_name_or_path", f"{exc}{hint}")]
    if roots is not None and source.is_local and not source.bundled:
        problem = _outside_problem(Path(source.path), roots)
        if problem:
            return None, [problem]
    directory = local_model_dir(source, models_cache)
    tokenizer = directory / "tokenizer.json" if directory else None
    return ModelFacts(source, tokenizer, _model_shape(source, directory)), []


def _outside_problem(folder: Path, roots: list[Path]) -> ConfigProblem | None:
    """The folder and every file below it (what loading reads) must resolve inside the roots: a symlink in an
    allowed folder must not lead a load out of it."""
    _, problem = confine_tree(folder, roots, "model_name_or_path")
    return problem


def local_model_dir(source: ModelSource, models_cache: Path | None) -> Path | None:
    """The directory with config.json / tokenizer.json, when we have one without loading anything."""
    if source.bundled:
        converted = models_cache / BUNDLED_CONVERTED if models_cache else None
        return converted if converted and (converted / "config.json").is_file() else None
    if source.is_local:
        return None if source.gguf_file else Path(source.path)
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(source.path, "config.json")
    return Path(cached).parent if isinstance(cached, str) else None


def _model_shape(source: ModelSource, directory: Path | None) -> Any:
    from tuneforge.modelref.shape import ModelShapeError, read_model_shape

    try:
        if directory is not None:
            return read_model_shape(directory, None)
        if source.is_local and source.gguf_file:
            return read_model_shape(Path(source.path), source.gguf_file)
    except (ModelShapeError, OSError):
        return None
    return None
