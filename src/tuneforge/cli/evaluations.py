"""`tuneforge eval …`: evaluate a registered model on a dataset split (beside its base model) over HTTP, follow the
job, and show the before / after report with the best and worst samples. `--grader` adds graders (a stored grader's
name, or a grader file read here and sent inline); the report gives each one's mean score per model beside BLEU /
ROUGE, and each answer's grade."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tuneforge.cli.graders import FileProblem, read_grader_file
from tuneforge.cli.remote import SERVER_ENV, ApiClient, RemoteError, server_url
from tuneforge.cli.tasks import EXIT_FAILED, JSON_HELP, SERVER_HELP, call_server, console, print_result

eval_app = typer.Typer(no_args_is_help=True, help="Evaluate models: eval loss, perplexity, BLEU-4, ROUGE-1/2/L; a "
                       "fine-tuned model side by side with its base.")
METRICS = (("eval_loss", "eval loss", "{:.4f}"), ("perplexity", "perplexity", "{:.2f}"), ("bleu_4", "BLEU-4", "{:.2f}"),
           ("rouge_1", "ROUGE-1", "{:.2f}"), ("rouge_2", "ROUGE-2", "{:.2f}"), ("rouge_l", "ROUGE-L", "{:.2f}"))
FINAL = ("completed", "failed", "stopped")
GRADER_FILE_SUFFIXES = (".json", ".yaml", ".yml")
GRADER_HELP = ("A grader scoring each generated answer: a stored grader's name (tuneforge graders list), or a .json / "
               ".yaml grader file (sent inline). Repeat for more; the report gives each one's mean per model.")


@eval_app.callback()
def _server_option(ctx: typer.Context,
                   server: str = typer.Option(None, "--server", envvar=SERVER_ENV, help=SERVER_HELP)) -> None:
    ctx.obj = server_url(server)


@eval_app.command("run")
def run(ctx: typer.Context,
        model: str = typer.Argument(..., help="A registered model: its id or name."),
        dataset: str = typer.Option(None, "--dataset", "-d", help="Managed ('name', 'name@v2'), bundled or a path; "
                                    "default: what the model was trained on."),
        split: str = typer.Option("test", help="test (else valid) | valid | train"),
        max_samples: int = typer.Option(50, help="Score at most this many samples."),
        max_new_tokens: int = typer.Option(128, help="Longest generated answer."),
        baseline: bool = typer.Option(True, "--baseline/--no-baseline", help="Also score the base model."),
        graders: list[str] = typer.Option(None, "--grader", "-g", metavar="NAME_OR_FILE", help=GRADER_HELP),
        follow: bool = typer.Option(True, "--follow/--no-follow", help="Wait and show the report."),
        as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Start an evaluation job; with --follow (default) show its progress, then the report."""
    def action(client: ApiClient) -> int:
        body = {"modelId": _model_id(client, model), "dataset": dataset, "split": split, "maxSamples": max_samples,
                "maxNewTokens": max_new_tokens, "compareWithBase": baseline,
                "graders": [grader_ref(value) for value in graders or []]}
        data = client.post("/evaluations/createEvaluation", body)
        if not follow:
            print_result(data, f"evaluation {data['id']} started (tuneforge eval show {data['id']})", as_json)
            return 0
        data = _follow(client, data)
        print_result(data, _report_view(data), as_json)
        return 0 if data["status"] == "completed" else EXIT_FAILED

    call_server(ctx.obj, action)


@eval_app.command("show")
def show(ctx: typer.Context, evaluation_id: int = typer.Argument(..., metavar="ID"),
         as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """An evaluation: status, scores side by side, the best and worst samples."""
    call_server(ctx.obj, lambda client: print_result(
        data := client.get("/evaluations/getEvaluation", id=evaluation_id), _report_view(data), as_json))


@eval_app.command("list")
def list_evaluations(ctx: typer.Context, model_id: int = typer.Option(None, "--model-id"),
                     as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Evaluations, newest first, with their headline scores."""
    def action(client: ApiClient) -> None:
        data = client.get("/evaluations/getEvaluationList", modelId=model_id)
        table = Table("id", "model", "dataset", "split", "status", "scored", *(label for _, label, _ in METRICS),
                      "graders")
        for item in data["items"]:
            head = [str(item["id"]), str(item["modelId"]), item["dataset"], item["split"], item["status"]]
            for row, scores_of in enumerate(item["scores"] or [{}]):  # one line per model: base, then the model
                table.add_row(*(head if row == 0 else [""] * len(head)), scores_of.get("label", "—"),
                              *(_fmt(scores_of.get(key), fmt) for key, _, fmt in METRICS),
                              escape(" · ".join(f"{name} {mean:.3f}" for name, mean in
                                                (scores_of.get("graders") or {}).items())))
        print_result(data, table, as_json)

    call_server(ctx.obj, action)


@eval_app.command("stop")
def stop(ctx: typer.Context, evaluation_id: int = typer.Argument(..., metavar="ID")) -> None:
    """Stop a running evaluation."""
    call_server(ctx.obj, lambda client: console.print(
        f"evaluation {evaluation_id}: {client.post('/evaluations/stopEvaluation', {'id': evaluation_id})['status']}"))


@eval_app.command("delete")
def delete(ctx: typer.Context, evaluation_id: int = typer.Argument(..., metavar="ID")) -> None:
    """Delete a finished evaluation and its report."""
    call_server(ctx.obj, lambda client: console.print(
        client.delete("/evaluations/deleteEvaluation", id=evaluation_id)))


def _model_id(client: ApiClient, model: str) -> int:
    if model.isdigit():
        return int(model)
    items = client.get("/models/getModelList", name=model)["items"]
    for item in items:
        if item["name"] == model:
            return item["id"]
    raise RemoteError(404, "not_found", f"no registered model named {model!r} (see `tuneforge models list`)", [])


def grader_ref(value: str) -> str | dict[str, Any]:
    """A grader as the request names it: a grader file's object (read here: the server cannot see this machine's
    files), else the stored grader's name. Grader names have no dots, so a .json / .yaml value is always a file."""
    path = Path(value).expanduser()
    if path.suffix.lower() in GRADER_FILE_SUFFIXES:
        if not path.is_file():
            raise FileProblem(f"--grader {value}", "no such file (a stored grader is named without a suffix)")
        return read_grader_file(path)
    return value


def _follow(client: ApiClient, data: dict[str, Any]) -> dict[str, Any]:
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        bar = progress.add_task(f"evaluation {data['id']}", total=100)
        while data["status"] not in FINAL:
            progress.update(bar, completed=data["percentage"],
                            description=f"evaluation {data['id']}: {data.get('message') or data.get('stage') or '…'}")
            time.sleep(1.0)
            data = client.get("/evaluations/getEvaluation", id=data["id"])
    return data


def _report_view(data: dict[str, Any]) -> Any:
    from rich.console import Group

    head = f"evaluation {data['id']} · {data['dataset']} ({data['split']}) · [bold]{data['status']}[/bold]"
    if data["status"] != "completed":
        detail = data.get("error") or f"{data['percentage']:.0f}% {data.get('message') or ''}"
        return Group(head, detail)
    report = data.get("report") or {}
    models = report.get("models") or data["scores"]
    parts: list[Any] = [head, _scores_table(report, models)]
    tuned = models[-1] if models else {}
    for title, samples in (("best", tuned.get("bestSamples", [])), ("worst", tuned.get("worstSamples", []))):
        if samples:
            parts.append(_samples_table(f"{title} samples of {tuned['label']}", samples, [m["label"] for m in models]))
    return Group(*parts)


def _scores_table(report: dict[str, Any], models: list[dict[str, Any]]) -> Table:
    """One row per score, a column per model (base first) and the change; each grader's mean below BLEU / ROUGE."""
    compared = "change" in report
    change = report.get("change", {})
    table = Table("metric", *(m["label"] for m in models), *(["change"] if compared else []))
    for key, label, fmt in METRICS:
        table.add_row(label, *(_fmt(m.get(key), fmt) for m in models),
                      *([_fmt(change.get(key), "{:+.2f}")] if compared else []))
    for name in grader_names(models):
        table.add_row(escape(f"grader {name}"), *(_grader_mean(m, name) for m in models),
                      *([_fmt(change.get("graders", {}).get(name), "{:+.3f}")] if compared else []))
    return table


def grader_names(models: list[dict[str, Any]]) -> list[str]:
    """Every grader any model was scored with, in the order the request named them."""
    return list(dict.fromkeys(name for m in models for name in m.get("graders") or {}))


def _grader_mean(scores: dict[str, Any], name: str) -> str:
    """A model's mean score for one grader; answers it could not grade count 0, and the mean says how many."""
    mean = _fmt((scores.get("graders") or {}).get(name), "{:.3f}")
    failed = (scores.get("grader_failures") or {}).get(name)
    return f"{mean} ({failed} failed)" if failed else mean


def _samples_table(title: str, samples: list[dict[str, Any]], labels: list[str]) -> Table:
    table = Table("prompt", "reference", *labels, title=title, show_lines=True)
    for sample in samples:
        outputs = sample.get("outputs", {})
        table.add_row(escape(_short(sample["prompt"])), escape(_short(sample["reference"])),
                      *(_answer(outputs[label]) if label in outputs else "—" for label in labels))
    return table


def _answer(output: dict[str, Any]) -> str:
    """The answer and its scores; a loss-only job (predict: false) has no text scores."""
    scores = f"ROUGE-L {_fmt(output.get('rouge_l'), '{:.1f}')} · loss {_fmt(output.get('loss'), '{:.3f}')}"
    errors = output.get("grader_errors") or {}
    graded = [f"{name} {_fmt(score, '{:.2f}')}" + (f" failed: {_short(errors[name], 80)}" if name in errors else "")
              for name, score in (output.get("graders") or {}).items()]
    lines = [escape(_short(output.get("text") or "")), f"[dim]{scores}[/dim]"]
    lines += [f"[dim]{escape(line)}[/dim]" for line in graded]
    return "\n".join(lines)


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fmt(value: Any, fmt: str) -> str:
    return fmt.format(value) if isinstance(value, int | float) else "—"
