"""Checks a training config before any process starts or any file is written: config, model, datasets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


class PreflightError(Exception):
    """A problem in the user's input: printed as is, exit code 2."""


@dataclass
class CheckedConfig:
    raw: dict[str, Any]
    config: Any
    config_dir: Path | None


def check_training_config(raw: dict[str, Any], config_dir: Path | None, source: str) -> CheckedConfig:
    from tuneforge.data.records import DatasetError
    from tuneforge.data.sources import DatasetConfigError, DatasetNotFound
    from tuneforge.engine.bundled import BundledModelMissing, bundled_gguf_path, is_bundled_name
    from tuneforge.engine.errors import EngineError
    from tuneforge.engine.models import resolve_model_source
    from tuneforge.schemas import ConfigError, parse_training_config

    try:
        cfg = parse_training_config(raw, source=source)
    except ConfigError as exc:
        raise PreflightError(str(exc)) from exc
    try:
        if is_bundled_name(cfg.model_name_or_path):
            bundled_gguf_path()
        else:
            resolve_model_source(cfg.model_name_or_path, config_dir=config_dir, gguf_file=cfg.gguf_file)
    except (EngineError, BundledModelMissing) as exc:
        hint = getattr(exc, "hint", None)
        raise PreflightError(f"model_name_or_path: {exc}" + (f"\nhint: {hint}" if hint else "")) from exc
    if cfg.do_train and not cfg.dataset:
        raise PreflightError("dataset: no dataset given; name one from dataset_info.json, a .json/.jsonl file or "
                             "a folder with train.jsonl")
    try:
        check_datasets(cfg, config_dir)
    except (DatasetError, DatasetNotFound, DatasetConfigError) as exc:
        raise PreflightError(str(exc)) from exc
    return CheckedConfig(raw, cfg, config_dir)


def check_datasets(cfg: Any, config_dir: Path | None) -> None:
    """Every dataset file is found and every record is valid (all bad lines reported, by file:line:field)."""
    from tuneforge.data.prepare import load_files
    from tuneforge.data.sources import resolve_dataset_sources

    kind = "text" if cfg.stage == "pt" else "chat"
    for names in (cfg.dataset, cfg.eval_dataset):
        for source in resolve_dataset_sources(names, cfg.dataset_dir, config_dir):
            load_files(source, [*source.files, *source.eval_files], kind, cfg.max_samples)
