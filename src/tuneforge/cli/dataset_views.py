"""Rich rendering of the dataset API's JSON (camelCase views; the report, statistics and preview inside keep the
data package's snake_case names): tables, the validation report by file:line, the histogram, the preview."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from tuneforge.cli.task_views import count, moment

VERSION_BADGES = {"validating": ("⏳", "yellow"), "valid": ("✅", "green"), "invalid": ("❌", "red")}
HISTOGRAM_WIDTH = 40


def badge(status: str | None) -> Text:
    if status is None:
        return Text("— no version", style="bright_black")
    icon, colour = VERSION_BADGES.get(status, ("•", "white"))
    return Text(f"{icon} {status}", style=colour)


def size(value: float | None) -> str:
    if value is None:
        return "—"
    for limit, unit in ((1024**3, "GiB"), (1024**2, "MiB"), (1024, "KiB")):
        if value >= limit:
            return f"{value / limit:.1f} {unit}"
    return f"{value:.0f} B"


def total_rows(rows: dict[str, int] | None) -> int | None:
    return sum(rows.values()) if rows else None


def rows_text(rows: dict[str, int] | None) -> str:
    """{"train": 20, "valid": 4} → "24 (train 20 · valid 4)"."""
    if not rows:
        return "—"
    if len(rows) == 1:
        return f"{sum(rows.values())} ({next(iter(rows))})"
    return f"{sum(rows.values())} (" + " · ".join(f"{split} {n}" for split, n in rows.items()) + ")"


def byte_progress(console: Console) -> Progress:
    """The upload bar: bytes sent of all files, speed, time left."""
    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    TimeRemainingColumn(), console=console)


def percent_progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), console=console)


# -- list / show -----------------------------------------------------------------------------------------------------
def dataset_table(items: list[dict[str, Any]], total: int, page: int, page_size: int) -> Table:
    first = (page - 1) * page_size + 1
    shown = f"{first}–{first + len(items) - 1} of {total}" if items else f"(none of {total})" if total else "(none)"
    table = Table(title=f"datasets {shown}", title_justify="left")
    for name in ("id", "name", "format", "purpose", "latest", "status", "rows", "created"):
        table.add_column(name, justify="right" if name in ("id", "latest", "rows") else "left",
                         no_wrap=name in ("id", "status", "created"))
    for item in items:
        latest = item.get("latestVersion")
        rows = total_rows(item.get("rows"))
        table.add_row(str(item["id"]), item["name"], item.get("formatting") or "detected…", item.get("purpose") or "—",
                      f"v{latest}" if latest else "—", badge(item.get("status")),
                      str(rows) if rows is not None else "—", moment(item.get("createdAt")))
    return table


def detail_view(dataset: dict[str, Any]) -> RenderableType:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    title = f"{dataset['id']} {dataset['name']}" + (f" — {dataset['description']}" if dataset.get("description")
                                                     else "")
    rows: list[tuple[str, Any]] = [
        ("dataset", title),
        ("status", Text.assemble(badge(dataset.get("status")), f"  latest v{dataset.get('latestVersion') or '—'}")),
        ("format", dataset.get("formatting") or "detected from the records"),
        ("purpose", dataset.get("purpose")),
        ("columns", _mapping(dataset.get("columns"))),
        ("tags", _mapping(dataset.get("tags"))),
        ("created", moment(dataset.get("createdAt"))),
    ]
    for key, value in rows:
        grid.add_row(key, value if isinstance(value, Text) else Text(str(value if value is not None else "—")))
    versions = dataset.get("versions") or []
    return Group(grid, version_table(versions) if versions else Text("no versions"))


def _mapping(value: dict[str, str] | None) -> str:
    return ", ".join(f"{key} ← {field}" for key, field in value.items()) if value else "standard names"


def version_table(versions: list[dict[str, Any]]) -> Table:
    table = Table(title="versions", title_justify="left")
    for name in ("version", "reference", "status", "rows", "problems", "size", "files", "source", "created"):
        table.add_column(name, justify="right" if name in ("version", "problems", "size") else "left",
                         no_wrap=name not in ("files", "source"))
    for version in versions:
        status = badge(version.get("status"))
        if version.get("status") == "validating":
            status.append(f" {version.get('progress') or 0:.0f}%")
        files = ", ".join(f"{split}: {', '.join(names)}" for split, names in (version.get("files") or {}).items())
        table.add_row(f"v{version['version']}", version.get("reference") or "", status, rows_text(version.get("rows")),
                      str(version.get("problemCount") or 0), size(version.get("sizeBytes")), files or "—",
                      _source(version.get("source")), moment(version.get("createdAt")))
    return table


def _source(source: str | None) -> str:
    """'upload: a.jsonl, b.jsonl' says no more than the files column; a server path or URI does."""
    if not source:
        return "—"
    return "upload" if source.startswith("upload:") else source


# -- the validation report -------------------------------------------------------------------------------------------
def problem_count(view: dict[str, Any]) -> int:
    report = view.get("report") or {}
    counts = (view.get("problemCount"), report.get("problem_count"), report.get("total_problems"))
    return max((c for c in counts if isinstance(c, int)), default=0)


def problem_lines(report: dict[str, Any]) -> list[str]:
    """file:line: field: reason, as an editor jumps to it (line 0: the whole file)."""
    lines = []
    for problem in report.get("problems") or []:
        where = f"{problem.get('file')}:{problem['line']}" if problem.get("line") else str(problem.get("file"))
        field = f" {problem['field']}:" if problem.get("field") else ""
        lines.append(f"{where}:{field} {problem.get('reason')}")
    return lines


def validation_view(view: dict[str, Any]) -> RenderableType:
    """A version's status, rows per split and, when invalid, its problems (the first ones and the count)."""
    status = view.get("status")
    head = Text.assemble(badge(status), " ", (str(view.get("reference")), "bold"))
    if status == "validating":
        return Group(head.append(f"  {view.get('progress') or 0:.0f}% checked"),)
    report = view.get("report") or {}
    head.append(f"  rows {rows_text(view.get('rows'))}")
    if report.get("formatting"):
        head.append(f"  format {report['formatting']}" + (" (detected)" if report.get("mapping_detected") else ""))
    if status == "valid":
        return head
    count = problem_count(view)
    lines: list[RenderableType] = [head, Text(f"{count} problem{'s' if count != 1 else ''}:", style="red")]
    listed = problem_lines(report)
    lines += [Text(f"  {line}") for line in listed]
    if report.get("error") and not listed:  # the server could not finish the check
        lines.append(Text(f"  {report['error']}"))
    if count > len(listed) and listed:
        lines.append(Text(f"  … and {count - len(listed)} more (fix these and upload a new version)", style="dim"))
    by_code = report.get("problems_by_code") or {}
    if len(by_code) > 1:
        lines.append(Text("  by kind: " + ", ".join(f"{code} {n}" for code, n in by_code.items()), style="dim"))
    return Group(*lines)


def uploaded_view(what: str, version: dict[str, Any]) -> Text:
    files = [name for names in (version.get("files") or {}).values() for name in names]
    return Text(f"{what}: {version.get('reference')} ({len(files)} file{'s' if len(files) != 1 else ''}, "
                f"{size(version.get('sizeBytes'))})")


# -- statistics ------------------------------------------------------------------------------------------------------
def stats_view(stats: dict[str, Any]) -> RenderableType:
    """Per split: rows, token lengths, over cutoff_len, duplicates, empty answers; then the length histogram."""
    overall = stats.get("overall") or {}
    parts: list[RenderableType] = [
        Text.assemble(("statistics of ", ""), (str(stats.get("reference")), "bold"),
                      f"  rows {rows_text(stats.get('rows'))}"),
        Text(f"tokens counted with {stats.get('tokens_measured_with') or '?'}", style="dim"),
        split_table(stats),
    ]
    if stats.get("cutoff_len") and overall.get("over_cutoff") is not None:
        over = overall["over_cutoff"]
        parts.append(Text(f"over cutoff_len {stats['cutoff_len']}: {over} sample{'s' if over != 1 else ''}"
                          + (" would be truncated in training" if over else ""), style="yellow" if over else ""))
    parts += [Text(line) for line in duplicate_lines(overall)]
    if (overall.get("histogram") or {}).get("counts"):
        parts.append(histogram_view(overall["histogram"]))
    return Group(*parts)


def split_table(stats: dict[str, Any]) -> Table:
    cutoff = stats.get("cutoff_len")
    table = Table(title_justify="left")
    columns = ("split", "rows", "invalid", "min", "p50", "p95", "max", "mean", "tokens",
               f"over {cutoff}" if cutoff else "over cutoff", "exact dup", "near dup", "empty answers")
    for name in columns:
        table.add_column(name, justify="left" if name == "split" else "right")
    splits = list((stats.get("splits") or {}).values())
    if len(splits) != 1 and stats.get("overall"):
        splits.append(stats["overall"])
    for split in splits:
        tokens = split.get("tokens") or {}
        table.add_row(str(split.get("split")), _int(split.get("rows")), _int(split.get("rows_invalid")),
                      _int(tokens.get("min")), _int(tokens.get("p50")), _int(tokens.get("p95")),
                      _int(tokens.get("max")), _float(tokens.get("mean")), count(split.get("total_tokens")),
                      _int(split.get("over_cutoff")) if cutoff else "—", _int(split.get("exact_duplicates")),
                      _int(split.get("near_duplicates")), _int(split.get("empty_responses")),
                      style="bold" if split is stats.get("overall") else None)
    return table


def duplicate_lines(overall: dict[str, Any]) -> list[str]:
    """Where the first repeats are, so a user can look at them."""
    lines = []
    for kind in ("exact", "near"):
        examples = overall.get(f"{kind}_duplicate_examples") or []
        if examples:
            shown = ", ".join(f"{e.get('location')} = {e.get('same_as')}" for e in examples)
            lines.append(f"{kind} duplicates ({overall.get(f'{kind}_duplicates', len(examples))}): {shown}"
                         + (" …" if overall.get(f"{kind}_duplicates", 0) > len(examples) else ""))
    return lines


def histogram_view(histogram: dict[str, Any]) -> RenderableType:
    """One Rich bar per bin [low, high), as long as its share of the fullest bin."""
    counts, edges = histogram.get("counts") or [], histogram.get("edges") or []
    table = Table.grid(padding=(0, 1))
    table.add_column(justify="right", no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column(justify="right")
    largest = max(counts) or 1
    for index, number in enumerate(counts):
        low = edges[index] if index < len(edges) else None
        high = edges[index + 1] if index + 1 < len(edges) else None
        bar = "█" * round(HISTOGRAM_WIDTH * number / largest) or ("▏" if number else "")
        table.add_row(f"{_int(low)}–{_int(high)}", Text(bar.ljust(HISTOGRAM_WIDTH), style="cyan"), str(number))
    return Group(Text("length histogram (tokens per sample, all splits)", style="bold"), table)


def _int(value: Any) -> str:
    return "—" if value is None else f"{value:.0f}" if isinstance(value, float) else str(value)


def _float(value: Any) -> str:
    return "—" if value is None else f"{value:.1f}"


# -- preview ---------------------------------------------------------------------------------------------------------
def preview_view(preview: dict[str, Any]) -> RenderableType:
    """Each record's text as training sees it: trained text green, masked text dimmed, and the count."""
    parts: list[RenderableType] = [Text.assemble(
        ("preview of ", ""), (str(preview.get("reference")), "bold"),
        f" through template {preview.get('template')} with {preview.get('model')}'s tokenizer "
        f"(cutoff_len {preview.get('cutoffLen')})"),
        Text.assemble(("green", "green"), ": trained on · ", ("dim", "dim"), ": masked (no loss)")]
    for sample in preview.get("samples") or []:
        parts += sample_view(sample)
    skipped = preview.get("skippedTotal") or 0
    if skipped:
        parts.append(Text(f"skipped {skipped} invalid record(s) on the way:", style="yellow"))
        parts += [Text(f"  {line}") for line in preview.get("skipped") or []]
    if not preview.get("samples"):
        parts.append(Text("no valid record to show"))
    return Group(*parts)


def sample_view(sample: dict[str, Any]) -> list[RenderableType]:
    head = Text(f"── {sample.get('origin')} ", style="bold")
    if sample.get("error"):
        return [head, Text(f"cannot be encoded: {sample['error']}", style="red")]
    if sample.get("label") is not None:
        head.append("desirable" if sample["label"] else "undesirable", style="green" if sample["label"] else "red")
    parts: list[RenderableType] = [head, _segments(sample), _count(sample)]
    for side in ("chosen", "rejected"):  # a preference pair: each answer after the shared prompt
        if sample.get(side):
            parts += [Text(f"{side}:", style="bold green" if side == "chosen" else "bold red"),
                      _segments(sample[side]), _count(sample[side])]
    if sample.get("item"):  # a prompt: the row its graders read
        parts += [Text(f"item.{key}: {json.dumps(value, ensure_ascii=False)[:200]}", style="cyan")
                  for key, value in sample["item"].items()]
    return parts


def _segments(part: dict[str, Any]) -> Text:
    body = Text()
    for segment in part.get("segments") or []:
        body.append(segment["text"], style="green" if segment.get("trained") else "dim")
    return body


def _count(part: dict[str, Any]) -> Text:
    count = f"trained {part.get('trained_count', 0)} / {part.get('token_count', 0)} tokens"
    if part.get("truncated"):
        count += f" · truncated: {part.get('tokens_cut', 0)} tokens cut at cutoff_len"
    if part.get("dropped"):
        count += " · dropped: no token is trained on, training skips it"
    return Text(count, style="yellow" if part.get("dropped") else "bold")
