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
    from tuneforge.modelref import ModelNotFound, check_hub_model, locate_model
    from tuneforge.schemas import ConfigError, parse_training_config

    try:
        cfg = parse_training_config(raw, source=source)
    except ConfigError as exc:
        raise PreflightError(str(exc)) from exc
    try:
        source = locate_model(cfg.model_name_or_path, config_dir=config_dir, gguf_file=cfg.gguf_file)
        if not source.is_local:
            check_hub_model(source.path, config_dir)
    except ModelNotFound as exc:
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
    has_eval = bool(cfg.val_size or cfg.eval_dataset)
    for names in (cfg.dataset, cfg.eval_dataset):
        for source in resolve_dataset_sources(names, cfg.dataset_dir, config_dir):
            load_files(source, [*source.files, *source.eval_files], kind, cfg.max_samples)
            has_eval = has_eval or bool(source.eval_files)
    if cfg.eval_strategy != "no" and not has_eval:
        raise PreflightError(f"eval_strategy: is '{cfg.eval_strategy}' but there is nothing to evaluate on — set "
                             "val_size (e.g. 0.1), eval_dataset, or use a dataset folder with valid.jsonl")
