"""Rich rendering of the task API's JSON (camelCase, as the server sends it): tables, badges, the detail view."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
from rich.table import Table
from rich.text import Text

GIB = 1024**3
# Status badges; `stopping` is tuneforge's short state while a stop is in flight.
STATUS_BADGES = {"pending": ("🟡", "yellow"), "running": ("🟢", "green"), "stopping": ("🟠", "yellow"),
                 "completed": ("✅", "green"), "failed": ("❌", "red"), "stopped": ("⏹️", "bright_black")}


def badge(status: str) -> Text:
    icon, colour = STATUS_BADGES.get(status, ("•", "white"))
    return Text(f"{icon} {status}", style=colour)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if 0 < seconds < 1:
        return "<1s"
    seconds = round(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def count(value: float | None) -> str:
    """12345 → 12.3k: token counts read at a glance."""
    if value is None:
        return "—"
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.1f}{suffix}"
    return f"{value:.0f}"


def number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def moment(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp)) if timestamp else "—"


def steps(task: dict[str, Any]) -> str:
    total = task.get("totalSteps")
    return f"{task.get('step', 0)}/{total}" if total else str(task.get("step", 0))


def task_table(items: list[dict[str, Any]], total: int, page: int, page_size: int) -> Table:
    table = Table(title=f"tasks {_page_range(len(items), total, page, page_size)}", title_justify="left")
    for name, justify in (("id", "right"), ("name", "left"), ("status", "left"), ("progress", "right"),
                          ("step", "right"), ("loss", "right"), ("tokens", "right"), ("elapsed", "right"),
                          ("ETA", "right"), ("created", "left")):
        table.add_column(name, justify=justify, no_wrap=name in ("id", "status", "step", "created"))
    for task in items:
        running = task["status"] in ("running", "stopping")
        table.add_row(str(task["id"]), task["name"], badge(task["status"]), f"{task.get('progress') or 0:.0f}%",
                      steps(task), number(task.get("loss")), count(task.get("tokensTrained")),
                      duration(task.get("elapsedS")), duration(task.get("etaS")) if running else "—",
                      moment(task.get("createdAt")))
    return table


def _page_range(shown: int, total: int, page: int, page_size: int) -> str:
    if not shown:
        return f"(none of {total})" if total else "(none)"
    first = (page - 1) * page_size + 1
    return f"{first}–{first + shown - 1} of {total}"


def created_view(task: dict[str, Any]) -> RenderableType:
    """What `tasks create` prints: who it is, what 'auto' became, and what it will cost."""
    lines: list[RenderableType] = [Text.assemble("created task ", (str(task["id"]), "bold"), f" {task['name']}  ",
                                                 badge(task["status"]))]
    lines += [Text(f"  {line}") for line in auto_lines(task.get("autoValues") or [])]
    if task.get("estimate"):
        lines.append(Text(f"  estimate: {estimate_line(task['estimate'])}"))
    lines += [Text.assemble("  ", line) for line in truncation_lines(task)]
    lines.append(Text(f"  output: {task.get('outputPath')}"))
    return Group(*lines)


def auto_lines(choices: list[dict[str, Any]]) -> list[str]:
    """'auto' values the server resolved: key = value (why)."""
    shown = []
    for choice in choices:
        key = choice.get("key") or choice.get("name") or choice.get("field") or "?"
        reason = choice.get("reason") or choice.get("why") or ""
        shown.append(f"auto {key} = {choice.get('value')}" + (f"  ({reason})" if reason else ""))
    return shown


def estimate_line(estimate: dict[str, Any]) -> str:
    memory = (estimate.get("memory") or {}).get("total")
    device = (estimate.get("devices") or ["the device"])[0]
    parts = []
    if memory is not None:
        capacity = estimate.get("device_memory")
        of = f" of {capacity / GIB:.1f} GiB on {device}" if capacity else ""
        parts.append(f"{memory / GIB:.1f} GiB per device{of}")
    if estimate.get("seconds_per_epoch") is not None:
        parts.append(f"{duration(estimate['seconds_per_epoch'])} per epoch "
                     f"({estimate.get('steps_per_epoch', '?')} steps/epoch, {estimate.get('total_steps', '?')} "
                     f"steps in all, ≈ {duration(estimate.get('total_seconds'))})")
    return " · ".join(parts) or "—"


def truncation_lines(task: dict[str, Any]) -> list[Text]:
    """Per training dataset: the samples longer than cutoff_len and the tokens training cuts off (a warning)."""
    report = ((task.get("estimate") or {}).get("dataset") or {}).get("truncation") or {}
    if not report:
        return []
    limit = f"cutoff_len {cutoff_len(task.get('trainingArgs') or {})}"
    lines = []
    for name, cut in report.items():
        if cut.get("over_cutoff"):
            lines.append(Text(f"warning: {name}: {cut['over_cutoff']:,} of {cut['samples']:,} samples exceed {limit} "
                              f"and lose {cut['tokens_cut']:,} tokens", style="yellow"))
        else:
            lines.append(Text(f"{name}: no sample is cut ({cut.get('samples', 0):,} samples, {limit})"))
    return lines


def cutoff_len(training_args: dict[str, Any]) -> Any:
    """The task's cutoff_len as given (or by an alias such as max_seq_length), else the schema's default: the server
    keeps the arguments as the user wrote them."""
    from tuneforge.schemas import ALIASES, TrainingConfig

    given = [value for key, value in training_args.items() if ALIASES.get(key, key) == "cutoff_len"]
    return given[0] if given else TrainingConfig.model_fields["cutoff_len"].default


def detail_view(task: dict[str, Any]) -> RenderableType:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    rows: list[tuple[str, Any]] = [
        ("task", f"{task['id']} {task['name']}" + (f" — {task['description']}" if task.get("description") else "")),
        ("status", badge(task["status"])),
        ("progress", f"{task.get('progress') or 0:.1f}%  step {steps(task)}"
                     + (f"  epoch {task['epoch']:.2f}" if task.get("epoch") is not None else "")),
        ("loss", f"{number(task.get('loss'))}  eval loss {number((task.get('metrics') or {}).get('eval_loss'))}"),
        ("tokens", f"{count(task.get('tokensTrained'))}"
                   + (f"  ({task['tokensPerSecond']:.0f} tok/s)" if task.get("tokensPerSecond") else "")),
        ("time", f"created {moment(task.get('createdAt'))} · started {moment(task.get('startTime'))} · "
                 f"ended {moment(task.get('endTime'))} · elapsed {duration(task.get('elapsedS'))} · "
                 f"ETA {duration(task.get('etaS'))}"),
        ("method", f"{task.get('stage')} / {task.get('finetuningType')}"),
        ("base model", task.get("baseModel")),
        ("dataset", task.get("datasetPath")),
        ("devices", ", ".join(map(str, task.get("devices") or [])) or "—"),
        ("command", task.get("command") or "— (not started)"),
        ("output", task.get("outputPath")),
        ("log", task.get("logPath")),
    ]
    if task.get("experimentId") is not None:
        rows.insert(1, ("experiment", str(task["experimentId"])))
    if task.get("estimate"):
        rows.append(("estimate", estimate_line(task["estimate"])))
    for index, line in enumerate(truncation_lines(task)):
        rows.append(("truncation" if index == 0 else "", line))
    for line in auto_lines(task.get("autoValues") or []):
        rows.append(("auto", line.removeprefix("auto ")))
    checkpoints = task.get("checkpoints") or []
    rows.append(("checkpoints", "\n".join(f"step {c['step']}: {c['path']}" for c in checkpoints) or "—"))
    if task.get("errorMessage"):
        code = f" (exit code {task['exitCode']})" if task.get("exitCode") is not None else ""
        rows.append(("error", Text(f"{task['errorMessage']}{code}", style="red")))
    for key, value in rows:
        grid.add_row(key, value if isinstance(value, Text) else Text(str(value if value is not None else "—")))
    return grid


def experiment_table(experiment: dict[str, Any]) -> RenderableType:
    """The tasks' final figures side by side; ★ marks the best completed run (lowest eval, else train loss)."""
    head = Text.assemble(("experiment ", ""), (f"{experiment['id']} {experiment['name']}", "bold"),
                         f"  {experiment.get('stage')}/{experiment.get('finetuningType')} · "
                         f"{experiment.get('baseModel')} · {experiment.get('datasetPath')}")
    rows = experiment.get("tasks") or []
    keys = sorted({k for row in rows for k in (row.get("hyperParameters") or {})})
    table = Table(title_justify="left")
    for name in ("", "id", "name", "status", *keys, "train loss", "eval loss", "perplexity", "tokens", "runtime"):
        table.add_column(name, justify="left" if name in ("name", "status") else "right")
    for row in rows:
        best = row["id"] == experiment.get("bestTaskId")
        params = row.get("hyperParameters") or {}
        table.add_row("★" if best else "", str(row["id"]), row["name"], badge(row["status"]),
                      *(_parameter(params.get(k)) if k in params else "—" for k in keys),
                      number(row.get("trainLoss")), number(row.get("evalLoss")), number(row.get("perplexity"), 2),
                      count(row.get("tokensTrained")), duration(row.get("runtimeS")),
                      style="bold green" if best else None)
    return Group(head, table if rows else Text("no tasks yet: add one with `tuneforge tasks create … --experiment "
                                               f"{experiment['id']}`"))


def _parameter(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def experiment_list_table(items: list[dict[str, Any]]) -> Table:
    table = Table(title=f"experiments ({len(items)})", title_justify="left")
    for name in ("id", "name", "method", "base model", "dataset", "tasks", "best", "created"):
        table.add_column(name)
    for item in items:
        table.add_row(str(item["id"]), item["name"], f"{item.get('stage')}/{item.get('finetuningType')}",
                      str(item.get("baseModel")), str(item.get("datasetPath")), str(len(item.get("tasks") or [])),
                      str(item.get("bestTaskId") or "—"), moment(item.get("createdAt")))
    return table


def gpu_table(inventory: dict[str, Any]) -> Table:
    kind = inventory.get("kind", "cpu")
    title = "GPUs" if kind == "cuda" else "devices (no GPU: CPU slots)"
    table = Table(title=title + ("  · tasks are waiting" if inventory.get("queued") else ""), title_justify="left")
    for name in ("index", "name", "memory free / total", "state"):
        table.add_column(name, justify="right" if name == "index" else "left")
    for device in inventory.get("devices") or []:
        total, free = device.get("totalMemory"), device.get("freeMemory")
        memory = f"{free / GIB:.1f} / {total / GIB:.1f} GiB" if total else "—"
        task = device.get("task")
        state = Text(f"busy: task {task['taskId']} {task['taskName']}", style="yellow") if task else \
            Text("free", style="green")
        table.add_row(str(device["index"]), str(device.get("name")), memory, state)
    return table


class TaskFollower:
    """`logs -f`: log lines scroll above a live progress bar (step/total, loss, tok/s, ETA) until the task ends.
    A dropped stream is picked up again from the last byte offset, so no line is shown twice or lost."""

    RECONNECTS = 5

    def __init__(self, client: Any, task_id: int, console: Console) -> None:
        self.client, self.task_id, self.console = client, task_id, console
        self.task: dict[str, Any] = {}
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                                 TextColumn("{task.fields[info]}"), console=console)
        self.bar = self.progress.add_task(f"task {task_id}", total=None, info="connecting…")

    def run(self, offset: int | None) -> int:
        """Exit code: 0 completed or stopped, 1 failed."""
        from tuneforge.cli.remote import ServerUnavailable

        self.task = self.client.get("/finetuning/getTask", id=self.task_id)  # no server, no task: say so at once
        failures, status = 0, None
        with self.progress:
            while status is None:
                try:
                    offset, status = self._stream(offset)
                    failures = 0
                except ServerUnavailable:
                    failures += 1
                    if failures > self.RECONNECTS:
                        raise
                    self.progress.update(self.bar, info="lost the server; reconnecting…")
                    time.sleep(1.0)
        return self._outcome(status)

    def close(self) -> None:
        self.progress.stop()

    def _stream(self, offset: int | None) -> tuple[int | None, str | None]:
        """One connection: (where the log continues, the final status or None when the stream just ended)."""
        for event, data in self.client.events("/finetuning/streamTask", id=self.task_id, offset=offset):
            if event == "log":
                for line in data.get("lines") or []:
                    self.progress.console.print(line, markup=False, highlight=False, emoji=False)
                offset = data.get("nextOffset", offset)
            elif event == "task":
                self.task = data
                self._show(data)
            elif event == "end":
                return offset, data.get("status")
        return offset, None

    def _show(self, task: dict[str, Any]) -> None:
        status, total = task.get("status", "?"), task.get("totalSteps")
        icon, colour = STATUS_BADGES.get(status, ("•", "white"))
        info = f"step {steps(task)} · loss {number(task.get('loss'))}"
        if task.get("tokensPerSecond"):
            info += f" · {task['tokensPerSecond']:.0f} tok/s"
        if status in ("running", "stopping"):
            info += f" · ETA {duration(task.get('etaS'))}"
        self.progress.update(self.bar, description=f"[{colour}]{icon} {status}[/]", total=total or None,
                             completed=task.get("step") or 0, info=info if status != "pending" else "waiting for "
                             "a free device…")

    def _outcome(self, status: str) -> int:
        task = self.task if self.task.get("status") == status else self.client.get("/finetuning/getTask",
                                                                                    id=self.task_id)
        name = f"task {self.task_id} {task.get('name', '')}".rstrip()
        if status == "completed":
            self.console.print(Text.assemble(badge(status), f" {name} at step {steps(task)}, loss "
                                             f"{number(task.get('loss'))}, {count(task.get('tokensTrained'))} tokens "
                                             f"in {duration(task.get('elapsedS'))}; output: {task.get('outputPath')}"))
            return 0
        if status == "stopped":
            self.console.print(Text.assemble(badge(status), f" {name} at step {steps(task)}; continue it with: "
                                             f"tuneforge tasks resume {self.task_id}"))
            return 0
        code = f" (exit code {task['exitCode']})" if task.get("exitCode") is not None else ""
        self.console.print(Text.assemble(badge(status), f" {name}{code}: {task.get('errorMessage') or 'no message'}"))
        return 1
