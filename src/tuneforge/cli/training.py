"""`tuneforge train CONFIG [key=value …] [--check]`: the planner's verdict, then the worker with a progress bar.

`--check` prints the plan (resolved values, datasets, truncation, estimate) and exits 0, or lists every problem
and exits 2 — no process started, no file written. Without it the same plan launches the worker.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from rich.console import Console

from tuneforge.cli.plan_views import print_plan, print_problems

EXIT_BAD_INPUT = 2


def plan_from_file(config: Path, overrides: list[str]) -> Any:
    """The planner's plan for a config file on this machine (raises ConfigError or PlanRejected)."""
    from tuneforge.planning import PlanInput, detect_host, plan_training
    from tuneforge.schemas import load_config_file, parse_overrides
    from tuneforge.settings import get_settings

    raw, path = load_config_file(config)
    raw.update(parse_overrides(overrides))
    settings = get_settings()
    given = PlanInput(raw, detect_host(), config_dir=path.parent, models_cache=settings.models_path)
    return plan_training(given), path


def train_from_file(config: Path, overrides: list[str], verbose: bool, console: Console, err: Console,
                    check: bool = False) -> int:
    from tuneforge.planning import PlanRejected
    from tuneforge.schemas import ConfigError

    try:
        plan, path = plan_from_file(config, overrides)
    except ConfigError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        return EXIT_BAD_INPUT
    except PlanRejected as exc:
        print_problems(exc.problems, str(config), err)
        return EXIT_BAD_INPUT
    if check:
        print_plan(plan, console)
        return 0
    return launch(plan, path.parent, verbose, console)


def launch(plan: Any, config_dir: Path | None, verbose: bool, console: Console) -> int:
    """The run directory is the output dir (as LLaMA-Factory keeps trainer_log.jsonl and checkpoints there)."""
    from tuneforge.cli.follow import follow_run, print_outcome, start_worker
    from tuneforge.rundir import RunDir
    from tuneforge.schemas.run_spec import RunSpec

    cfg, output_dir = plan.cfg, plan.output_dir
    run_dir = RunDir(output_dir)
    if not cfg.resume_from_checkpoint:  # a fresh run: the last run's report and checkpoints would mix in
        for stale in (run_dir.events_file, run_dir.trainer_log_file):
            stale.unlink(missing_ok=True)
        shutil.rmtree(run_dir.checkpoints_dir, ignore_errors=True)
    run_dir.create(RunSpec(config=plan.config, config_dir=str(config_dir) if config_dir else None))
    console.print(f"training {cfg.model_name_or_path} ({cfg.stage}, {cfg.finetuning_type}) → {output_dir}")
    if plan.dataset is not None and plan.dataset.samples_cut:
        console.print(f"[yellow]note:[/yellow] {plan.dataset.samples_cut} samples are longer than cutoff_len "
                      f"{cfg.cutoff_len} and will be cut (`tuneforge train --check` shows the report)")
    process = start_worker(run_dir, verbose)
    final = follow_run(run_dir, process, console)
    code = print_outcome(final, run_dir, output_dir, console)
    process.wait()
    return process.returncode if final is not None and final["type"] == "failed" else code
