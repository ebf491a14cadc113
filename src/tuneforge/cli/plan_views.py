"""How the CLI shows the planner's verdict: every problem naming its key, or the plan a run will follow."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

GIB = 1024**3


def print_problems(problems: list[Any], source: str, err: Console) -> None:
    err.print(f"[red]error:[/red] {source}: {len(problems)} problem{'s' if len(problems) != 1 else ''}, nothing "
              "was started", highlight=False)
    for problem in problems:  # one problem a line (continuations indented deeper), so scripts can read them
        message = problem.message.replace("\n", "\n    ")
        err.print(f"  [bold]{problem.field}[/bold]: {message}", highlight=False, soft_wrap=True)


def print_plan(plan: Any, console: Console) -> None:
    cfg = plan.cfg
    console.print(f"[green]ok[/green]: {cfg.model_name_or_path} · stage {cfg.stage} · {cfg.finetuning_type} → "
                  f"{plan.output_dir}", highlight=False)
    for choice in plan.auto_values:
        console.print(f"  auto {choice['field']} = {choice['value']}: {choice['reason']}", highlight=False)
    if plan.dataset is not None:
        console.print(_dataset_table(plan.dataset, cfg.cutoff_len))
    if plan.estimate is not None:
        _print_estimate(plan.estimate, console)


def _dataset_table(summary: Any, cutoff_len: int) -> Table:
    table = Table(title=f"datasets (tokens by {summary.tokens_measured_with}, cutoff_len {cutoff_len})")
    for column in ("dataset", "samples", "used", "over cutoff", "tokens cut"):
        table.add_column(column, justify="left" if column == "dataset" else "right")
    for name, counts in summary.samples_per_dataset.items():
        cut = summary.truncation.get(name)
        table.add_row(name, str(counts["rows"]), str(counts["used"]), str(cut.over_cutoff if cut else "—"),
                      str(cut.tokens_cut if cut else "—"))
    table.caption = f"{summary.num_train_samples} training, {summary.num_eval_samples} evaluation samples"
    return table


def _print_estimate(estimate: dict[str, Any], console: Console) -> None:
    memory = estimate.get("memory") or {}
    need, have = memory.get("total", 0) / GIB, estimate.get("device_memory", 0) / GIB
    seconds = estimate.get("total_seconds")
    timing = f", about {seconds / 60:.1f} min in all" if isinstance(seconds, int | float) else ""
    console.print(f"estimate: {need:.2f} GiB of {have:.1f} GiB per device{timing}; "
                  f"{estimate.get('total_steps', '?')} optimizer steps", highlight=False)
