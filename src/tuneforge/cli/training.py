"""`tuneforge train CONFIG [key=value …] [--check]`: the planner's verdict, then the worker with a progress bar.

`--check` prints the plan (resolved values, datasets, truncation, estimate) and exits 0, or lists every problem
and exits 2 — no process started, no file written. Without it the same plan launches the worker.
"""

from __future__ import annotations

import os
import shutil
import signal
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console

from tuneforge.cli.multinode import (
    Launch,
    LaunchError,
    check_master,
    launch_from_env,
    rendezvous_timeout,
    run_devices,
    visible_gpus,
)
from tuneforge.cli.plan_views import print_plan, print_problems

EXIT_BAD_INPUT = 2


def plan_from_file(config: Path, overrides: list[str], how: Launch | None = None) -> Any:
    """The planner's plan for a config file on this machine, for the ranks `how` starts (default: what the
    environment asks for); raises ConfigError, PlanRejected or LaunchError."""
    from tuneforge.planning import PlanInput, plan_training
    from tuneforge.planning.host import HostFacts, installed_packages
    from tuneforge.schemas import load_config_file, parse_overrides
    from tuneforge.settings import get_settings

    raw, path = load_config_file(config)
    raw.update(parse_overrides(overrides))
    gpus = visible_gpus(os.environ)
    how = how or launch_from_env(os.environ, len(gpus))
    host = HostFacts(run_devices(gpus, how), installed_packages())
    given = PlanInput(raw, host, config_dir=path.parent, models_cache=get_settings().models_path)
    return plan_training(given), path


def train_from_file(config: Path, overrides: list[str], verbose: bool, console: Console, err: Console,
                    check: bool = False) -> int:
    from tuneforge.planning import PlanRejected
    from tuneforge.schemas import ConfigError

    try:
        how = launch_from_env(os.environ, len(visible_gpus(os.environ)))
        plan, path = plan_from_file(config, overrides, how)
        how = replace(how, torchrun=how.torchrun or bool(plan.cfg.deepspeed or plan.cfg.fsdp),
                      ray=bool(plan.cfg.ray_num_workers))
        if how.ray and how.nodes is not None:
            raise LaunchError("ray_num_workers places the workers on a Ray cluster, and NNODES asks torchrun to",
                              "unset NNODES (Ray places the workers on its nodes), or remove ray_num_workers")
        if how.nodes is not None and not check:
            check_master(how.nodes, rendezvous_timeout(os.environ), waiting=_say_waiting(how.nodes, err))
    except ConfigError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        return EXIT_BAD_INPUT
    except PlanRejected as exc:
        print_problems(exc.problems, str(config), err)
        return EXIT_BAD_INPUT
    except LaunchError as exc:
        err.print(f"[red]error:[/red] {exc}\n[dim]{exc.hint}[/dim]", highlight=False)
        return EXIT_BAD_INPUT
    if check:
        print_plan(plan, console)
        return 0
    return launch(plan, path.parent, verbose, console, how)


def _say_waiting(nodes: Any, err: Console) -> Any:
    said = []

    def waiting() -> None:
        if not said:
            err.print(f"waiting for the master node at {nodes.master_addr}:{nodes.master_port} …", highlight=False)
            said.append(True)
    return waiting


def launch(plan: Any, config_dir: Path | None, verbose: bool, console: Console, how: Launch | None = None) -> int:
    """The run directory is the output dir (as LLaMA-Factory keeps trainer_log.jsonl and checkpoints there).

    Under several nodes the output dir is expected on storage every node sees; node 0 alone clears a previous
    run's files and shows progress (global rank 0 writes the events), the others run their ranks and wait."""
    from tuneforge.cli.follow import follow_run, print_outcome, start_worker
    from tuneforge.rundir import RunDir
    from tuneforge.schemas.run_spec import RunSpec

    how = how or Launch(1, torchrun=False, nodes=None)
    cfg, output_dir = plan.cfg, plan.output_dir
    run_dir = RunDir(output_dir)
    if not how.is_main_node:
        if not run_dir.spec_file.is_file():  # storage this node alone sees; on shared storage node 0's spec stands
            run_dir.create(RunSpec(config=plan.config, config_dir=str(config_dir) if config_dir else None))
        return _run_secondary_node(run_dir, how, verbose, console)
    if not cfg.resume_from_checkpoint:  # a fresh run: the last run's report and checkpoints would mix in
        for stale in (run_dir.events_file, run_dir.trainer_log_file):
            stale.unlink(missing_ok=True)
        shutil.rmtree(run_dir.checkpoints_dir, ignore_errors=True)
    run_dir.create(RunSpec(config=plan.config, config_dir=str(config_dir) if config_dir else None))
    run_dir.stop_file.unlink(missing_ok=True)  # the last run's stop request (Ctrl-C under Ray leaves one)
    console.print(f"training {cfg.model_name_or_path} ({cfg.stage}, {cfg.finetuning_type}) → {output_dir}")
    if plan.dataset is not None and plan.dataset.samples_cut:
        console.print(f"[yellow]note:[/yellow] {plan.dataset.samples_cut} samples are longer than cutoff_len "
                      f"{cfg.cutoff_len} and will be cut (`tuneforge train --check` shows the report)")
    process = start_worker(run_dir, verbose, how)
    final = follow_run(run_dir, process, console)
    code = print_outcome(final, run_dir, output_dir, console)
    process.wait()
    return process.returncode if final is not None and final["type"] == "failed" else code


def _run_secondary_node(run_dir: Any, how: Launch, verbose: bool, console: Console) -> int:
    from tuneforge.cli.follow import start_worker

    assert how.nodes is not None
    nodes = how.nodes
    console.print(f"node {nodes.node_rank} of {nodes.nnodes}: {how.nproc} process(es) joined "
                  f"{nodes.master_addr}:{nodes.master_port}; progress shows on node 0", highlight=False)
    process = start_worker(run_dir, verbose, how)

    def stop(signum: int, frame: Any) -> None:  # the ranks run in their own session: pass the stop on
        process.send_signal(signal.SIGTERM)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)
    try:
        code = process.wait()
    except KeyboardInterrupt:  # a stop from any node stops every rank at the same step (they agree on it)
        process.send_signal(signal.SIGTERM)
        code = process.wait()
    console.print(f"node {nodes.node_rank}: ranks finished (exit {code}); the outcome is in {run_dir.path}",
                  highlight=False)
    return code
