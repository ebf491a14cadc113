"""`tuneforge train CONFIG [key=value …]`: validate everything, then run the worker and show its progress."""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.console import Console

from tuneforge.cli.preflight import PreflightError, check_training_config

EXIT_BAD_INPUT = 2


def train_from_file(config: Path, overrides: list[str], verbose: bool, console: Console, err: Console) -> int:
    from tuneforge.schemas import ConfigError, load_config_file, parse_overrides

    try:
        raw, path = load_config_file(config)
        raw.update(parse_overrides(overrides))
        checked = check_training_config(raw, path.parent, source=str(path))
    except (ConfigError, PreflightError) as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        return EXIT_BAD_INPUT
    return launch(checked.raw, checked.config, checked.config_dir, verbose, console, err)


def launch(raw: dict, cfg, config_dir: Path | None, verbose: bool, console: Console, err: Console) -> int:
    """The run directory is the output dir (as LLaMA-Factory keeps trainer_log.jsonl and checkpoints there)."""
    from tuneforge.cli.follow import follow_run, print_outcome, start_worker
    from tuneforge.rundir import RunDir
    from tuneforge.schemas.run_spec import RunSpec

    output_dir = Path(cfg.output_dir or "saves/tuneforge-run").expanduser()
    output_dir = output_dir if output_dir.is_absolute() else (Path.cwd() / output_dir)
    if _has_model(output_dir) and not cfg.overwrite_output_dir and not cfg.resume_from_checkpoint:
        err.print(f"[red]error:[/red] output_dir: {output_dir} already holds a trained model.\n"
                  "what to do: set overwrite_output_dir=true, choose another output_dir, or resume with "
                  "resume_from_checkpoint=last", highlight=False)
        return EXIT_BAD_INPUT
    raw = {**raw, "output_dir": str(output_dir)}
    run_dir = RunDir(output_dir)
    if not cfg.resume_from_checkpoint:  # a fresh run: the last run's report and checkpoints would mix in
        for stale in (run_dir.events_file, run_dir.trainer_log_file):
            stale.unlink(missing_ok=True)
        shutil.rmtree(run_dir.checkpoints_dir, ignore_errors=True)
    run_dir.create(RunSpec(config=raw, config_dir=str(config_dir) if config_dir else None))
    console.print(f"training {cfg.model_name_or_path} ({cfg.stage}, {cfg.finetuning_type}) → {output_dir}")
    process = start_worker(run_dir, verbose)
    final = follow_run(run_dir, process, console)
    code = print_outcome(final, run_dir, output_dir, console)
    process.wait()
    return process.returncode if final is not None and final["type"] == "failed" else code


def _has_model(directory: Path) -> bool:
    return any((directory / name).exists() for name in ("adapter_config.json", "model.safetensors",
                                                        "model.safetensors.index.json"))
