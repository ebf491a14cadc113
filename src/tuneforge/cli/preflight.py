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
            source = resolve_model_source(cfg.model_name_or_path, config_dir=config_dir, gguf_file=cfg.gguf_file)
            if not source.is_local:
                check_hub_model(source.path, config_dir)
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
    has_eval = bool(cfg.val_size or cfg.eval_dataset)
    for names in (cfg.dataset, cfg.eval_dataset):
        for source in resolve_dataset_sources(names, cfg.dataset_dir, config_dir):
            load_files(source, [*source.files, *source.eval_files], kind, cfg.max_samples)
            has_eval = has_eval or bool(source.eval_files)
    if cfg.eval_strategy != "no" and not has_eval:
        raise PreflightError(f"eval_strategy: is '{cfg.eval_strategy}' but there is nothing to evaluate on — set "
                             "val_size (e.g. 0.1), eval_dataset, or use a dataset folder with valid.jsonl")


def check_hub_model(repo_id: str, config_dir: Path | None) -> None:
    """A hub id must be in the local cache or reachable now; otherwise the worker would retry for a minute."""
    from huggingface_hub import HfApi, try_to_load_from_cache

    from tuneforge.engine.errors import EngineError

    if isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
        return
    try:
        HfApi().model_info(repo_id, timeout=10)
    except Exception as exc:  # offline, unknown repo, gated: all mean "cannot load it from here"
        looked = [*([config_dir / repo_id] if config_dir else []), Path.cwd() / repo_id]
        places = "\n".join(f"  - {p.resolve()}" for p in dict.fromkeys(looked))
        raise EngineError(
            f"'{repo_id}' is not a local directory (looked in:\n{places}), not in the Hugging Face cache, and the "
            f"hub could not be reached: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
            hint="give a local model directory or 'bundled', or check the id and your network",
        ) from exc
