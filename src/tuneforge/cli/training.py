"""`tuneforge train CONFIG [key=value …] [--check]`: the planner's verdict, then the worker with a progress bar.

`--check` prints the plan (resolved values, datasets, truncation, estimate) and exits 0, or lists every problem
and exits 2 — no process started, no file written. Without it the same plan launches the worker.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console

from tuneforge.cli.multinode import DEFAULT_RENDEZVOUS_TIMEOUT_S, Launch, LaunchError, check_master, launch_from_env
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
    host = with_other_nodes(detect_host(count=max(visible_gpu_count(), 1)), os.environ)
    given = PlanInput(raw, host, config_dir=path.parent, models_cache=settings.models_path)
    return plan_training(given), path


def with_other_nodes(host: Any, env: Mapping[str, str]) -> Any:
    """Under NNODES=N the run's devices are this host's N times over (the other nodes are taken to be alike), so
    the estimate's steps, sharding and throughput count every rank. A bad NNODES is left to the launch check."""
    try:
        nodes = max(int(env.get("NNODES", "1").strip() or 1), 1)
    except ValueError:
        return host
    if nodes == 1:
        return host
    devices = [replace(device, index=k) for k, device in enumerate(host.devices * nodes)]
    return replace(host, devices=devices)


def visible_gpu_count() -> int:
    """The GPUs this command may use: all of the host's, or as many as CUDA_VISIBLE_DEVICES names (as torchrun's
    ranks would see them); 0 on a CPU host."""
    from tuneforge.planning.devices import detect_devices

    gpus = [d for d in detect_devices() if d.kind == "cuda"]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return len(gpus)
    return min(len([part for part in visible.split(",") if part.strip()]), len(gpus))


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
    try:
        how = launch_from_env(os.environ, visible_gpu_count(), bool(plan.cfg.deepspeed or plan.cfg.fsdp))
        if how.nodes is not None:
            timeout = float(os.environ.get("TUNEFORGE_RENDEZVOUS_TIMEOUT_S", DEFAULT_RENDEZVOUS_TIMEOUT_S))
            check_master(how.nodes, timeout, waiting=_say_waiting(how.nodes, err))
    except LaunchError as exc:
        err.print(f"[red]error:[/red] {exc}\n[dim]{exc.hint}[/dim]", highlight=False)
        return EXIT_BAD_INPUT
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
        run_dir.create(RunSpec(config=plan.config, config_dir=str(config_dir) if config_dir else None))
        return _run_secondary_node(run_dir, how, verbose, console)
    if not cfg.resume_from_checkpoint:  # a fresh run: the last run's report and checkpoints would mix in
        for stale in (run_dir.events_file, run_dir.trainer_log_file):
            stale.unlink(missing_ok=True)
        shutil.rmtree(run_dir.checkpoints_dir, ignore_errors=True)
    run_dir.create(RunSpec(config=plan.config, config_dir=str(config_dir) if config_dir else None))
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
    try:
        code = process.wait()
    except KeyboardInterrupt:  # a stop from any node stops every rank at the same step (they agree on it)
        process.send_signal(signal.SIGTERM)
        code = process.wait()
    console.print(f"node {nodes.node_rank}: ranks finished (exit {code}); the outcome is in {run_dir.path}",
                  highlight=False)
    return code
