"""Start a worker for a run directory and follow its events with a Rich progress bar."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

from tuneforge.cli.multinode import Launch
from tuneforge.rundir import RunDir, read_events


def start_worker(run_dir: RunDir, verbose: bool = False, how: Launch | None = None) -> subprocess.Popen:
    """The worker is a separate process: the same one the service runs, so `train` behaves like a task; under
    torchrun when this host's GPUs, a sharded strategy or several nodes ask for it."""
    from tuneforge.rundir.launch import worker_command

    how = how or Launch(1, torchrun=False, nodes=None)
    nproc = how.nproc if how.torchrun else 1
    command = worker_command(run_dir.path, nproc, sys.executable, sharded=how.torchrun, nodes=how.nodes)
    env = dict(os.environ)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    if how.ray:  # at TUNEFORGE_RAY_ADDRESS / RAY_ADDRESS, or a Ray of its own on this host
        env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        command = [sys.executable, "-m", "tuneforge.engine.ray_run", str(run_dir.path)]
    if how.torchrun and "OMP_NUM_THREADS" not in env:  # torchrun would set 1 thread per process
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    output = None if verbose else subprocess.DEVNULL  # everything is in train.log
    return subprocess.Popen(command, stdout=output, stderr=output, start_new_session=True, env=env)


def follow_run(run_dir: RunDir, process: subprocess.Popen, console: Console) -> dict[str, Any] | None:
    """Shows progress until the worker ends; Ctrl-C asks it to stop gracefully (checkpoint + stopped)."""
    seq, final = 0, None
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
               TextColumn("{task.fields[info]}"))
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task("preparing", total=None, info="loading model and data…")
        stopping = False
        while True:
            try:
                for event in read_events(run_dir.events_file, after_seq=seq):
                    seq = event["seq"]
                    final = _show(event, progress, bar) or final
                if process.poll() is not None:
                    for event in read_events(run_dir.events_file, after_seq=seq):
                        final = _show(event, progress, bar) or final
                    break
                time.sleep(0.3)
            except KeyboardInterrupt:
                if stopping:  # a second Ctrl-C: no more waiting
                    os.killpg(process.pid, signal.SIGKILL)
                else:
                    stopping = True
                    progress.update(bar, description="stopping", info="saving a checkpoint… (Ctrl-C again to kill)")
                    process.send_signal(signal.SIGTERM)
    return final


def _show(event: dict[str, Any], progress: Progress, bar: Any) -> dict[str, Any] | None:
    kind = event["type"]
    if kind == "started":
        progress.update(bar, description="training", total=event.get("total_steps"), completed=0,
                        info=f"{event.get('num_train_samples')} samples · {event.get('trainable_params'):,} "
                             f"trainable params · {event.get('precision')} on {event.get('device')}")
    elif kind == "progress":
        eta = event.get("eta_s")
        info = (f"step {event['step']}/{event['total_steps']} · loss {_num(event.get('loss'))} · "
                f"{event.get('tokens_per_second', 0):.0f} tok/s · ETA {_duration(eta) if eta is not None else '?'}")
        progress.update(bar, completed=event["step"], total=event["total_steps"], info=info)
    elif kind == "eval":
        progress.console.print(f"  eval at step {event['step']}: eval_loss {_num(event.get('eval_loss'))}")
    elif kind == "checkpoint":
        progress.update(bar, completed=event["step"])  # steps between logging_steps still move the bar
        progress.console.print(f"  checkpoint saved: {event['path']}")
    elif kind in ("completed", "failed", "stopped"):
        if kind == "completed" and event.get("step") is not None:
            progress.update(bar, completed=event["step"])
        return event
    return None


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def print_outcome(final: dict[str, Any] | None, run_dir: RunDir, output_dir: Path, console: Console) -> int:
    if final is None:
        tail = "\n".join(run_dir.tail_log(15))
        console.print(f"[red]error:[/red] the worker ended without a result. Last lines of {run_dir.log_file}:\n{tail}")
        return 1
    if final["type"] == "completed":
        metrics = final.get("metrics") or {}
        shown = {k: metrics[k] for k in ("train_loss", "eval_loss", "train_runtime", "trained_tokens") if k in metrics}
        console.print(f"[green]completed[/green] at step {final['step']}: "
                      + ", ".join(f"{k} {_fmt(v)}" for k, v in shown.items()))
        console.print(f"model saved to {output_dir}")
        return 0
    if final["type"] == "stopped":
        console.print(f"[yellow]stopped[/yellow] at step {final['step']}; checkpoint: {final.get('checkpoint')}\n"
                      "resume with: resume_from_checkpoint=last")
        return 0
    console.print(f"[red]failed:[/red] {final.get('error')}")
    if final.get("hint"):
        console.print(f"[bold]what to do:[/bold] {final['hint']}")
    console.print(f"log: {run_dir.log_file}")
    return 2 if final.get("step") is None else 1


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)
