"""`tuneforge graders …`: stored graders (OpenAI's grader schema) on a tuneforge server over HTTP — create one from a
JSON or YAML file, list, show, validate, delete, and run one on samples: a table of each score with its reason, and
the mean.

Exit codes: 0 done; 1 no server or a server fault; 2 the server (or a file) refused the input."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Group
from rich.table import Column, Table
from rich.text import Text

from tuneforge.cli.remote import SERVER_ENV, ApiClient, RemoteError, server_url
from tuneforge.cli.tasks import JSON_HELP, SERVER_HELP, call_server, console, print_json, print_result

graders_app = typer.Typer(no_args_is_help=True, help="Graders: named scoring rules (string_check, text_similarity, "
                          "python, score_model, label_model, multi) for GRPO / PPO rewards and evaluations.")
GRADER_FILE_HELP = ('A grader object in a .json or .yaml file, e.g. {"type": "string_check", "name": "exact", '
                    '"input": "{{sample.output_text}}", "reference": "{{item.answer}}", "operation": "eq"}.')
SAMPLES_HELP = ('A .jsonl file, one sample a line: {"sample": {"output_text": "…", "output_json": …}, "item": {…the '
                'dataset row, which the grader\'s templates read as item.*…}}. Any number of lines (sent 100 at a '
                'time, fewer for a grader of many python or model graders).')
REF_HELP = "A stored grader's name or id."
PAGE_SIZE = 200  # getGraderList's largest page


@graders_app.callback()
def _server_option(ctx: typer.Context,
                   server: str = typer.Option(None, "--server", envvar=SERVER_ENV, help=SERVER_HELP)) -> None:
    ctx.obj = server_url(server)


class FileProblem(RemoteError):
    """A local file the command cannot use: shown and exited with as the server's refusals are (exit code 2)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(422, "invalid_input", f"{where}: {message}", [])


def read_grader_file(path: Path) -> dict[str, Any]:
    """The grader object in a .json / .yaml / .yml file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise FileProblem(str(path), exc.strerror or str(exc)) from exc
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise FileProblem(str(path), f"not valid YAML: {exc}") from exc
    else:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise FileProblem(str(path), f"not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise FileProblem(str(path), "must hold one grader object ({\"type\": …, \"name\": …, …})")
    return data


def default_name(path: Path) -> str:
    """The stored name a file gives when --name is left out: its name up to the first '.', as the naming rule
    spells names (answer_in_text.py.json → answer_in_text, Exact Answer.yaml → exact-answer)."""
    return re.sub(r"[^a-z0-9_-]+", "-", path.name.split(".", 1)[0].lower()).strip("-_")


def read_samples(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, sample) for each non-empty line of a .jsonl file."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise FileProblem(str(path), exc.strerror or str(exc)) from exc
    samples = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            sample = json.loads(line)
        except ValueError as exc:
            raise FileProblem(f"{path}:{number}", f"not valid JSON: {exc}") from exc
        if not isinstance(sample, dict) or not isinstance(sample.get("sample"), dict):
            raise FileProblem(f"{path}:{number}", "must be {\"sample\": {\"output_text\": …}, \"item\": {…}}")
        samples.append((number, sample))
    if not samples:
        raise FileProblem(str(path), "holds no samples")
    return samples


def _grader(client: ApiClient, ref: str) -> dict[str, Any]:
    """A stored grader by name, or by id when `ref` is a number no grader is named."""
    try:
        return dict(client.get("/graders/getGrader", name=ref))
    except RemoteError as exc:
        if exc.status != 404 or not ref.isdigit():
            raise
    return dict(client.get("/graders/getGrader", id=int(ref)))


def _list_table(items: list[dict[str, Any]]) -> Table:
    table = Table("id", "name", "type", "description", "updated")
    for g in items:
        table.add_row(str(g["id"]), g["name"], g["type"], Text(g.get("description") or ""),
                      time.strftime("%Y-%m-%d %H:%M", time.localtime(g["updatedAt"])))
    return table


def _detail_view(grader: dict[str, Any]) -> Group:
    head = Text.assemble((grader["name"], "bold"), f" · {grader['type']} · id {grader['id']}")
    parts: list[Any] = [head]
    if grader.get("description"):
        parts.append(Text(grader["description"]))
    parts.append(Text(json.dumps(grader["grader"], indent=2, ensure_ascii=False)))
    return Group(*parts)


def _scores_view(results: list[dict[str, Any]], lines: list[int], mean: float, title: str) -> Group:
    table = Table(Column("line", justify="right"), Column("score", justify="right"), "reason", title=title)
    for result in results:
        table.add_row(str(lines[result["index"]]), f"{result['score']:.4g}", Text(result.get("reason") or ""))
    return Group(table, Text(f"mean {mean:.4g} over {len(results)} samples", style="bold"))


@graders_app.command("create")
def create(ctx: typer.Context, file: Path = typer.Argument(..., metavar="FILE.json|yaml", help=GRADER_FILE_HELP),
           name: str = typer.Option(None, "--name", help="The stored name (lowercase letters, digits, '-'); default: "
                                    "the file's name up to its first '.'."),
           description: str = typer.Option("", "--description", help="Free text shown with the grader."),
           as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Store a grader from a file; the server validates it and names every field at fault."""
    def action(client: ApiClient) -> None:
        body = {"name": name or default_name(file), "grader": read_grader_file(file), "description": description}
        data = client.post("/graders/createGrader", body)
        print_result(data, f"created grader {data['id']} [bold]{data['name']}[/bold] ({data['type']})", as_json)

    call_server(ctx.obj, action)


@graders_app.command("validate")
def validate(ctx: typer.Context, file: Path = typer.Argument(..., metavar="FILE.json|yaml", help=GRADER_FILE_HELP),
             as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Check a grader file without storing it: every problem, naming its field."""
    def action(client: ApiClient) -> int:
        data = client.post("/graders/validateGrader", {"grader": read_grader_file(file)})
        if as_json:
            print_json(data)
        elif data["valid"]:
            console.print(f"{file}: a valid {data['type']} grader", highlight=False)
        else:
            for problem in data["problems"]:
                console.print(Text(f"{problem['field']}: {problem['message']}"))
        return 0 if data["valid"] else 2

    call_server(ctx.obj, action)


@graders_app.command("list")
def list_graders(ctx: typer.Context, type: str = typer.Option(None, "--type", help="Only graders of this type."),
                 as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Stored graders, by name."""
    def action(client: ApiClient) -> None:
        data = client.get("/graders/getGraderList", type=type, pageSize=PAGE_SIZE)
        items = list(data["items"])
        while len(items) < data["total"] and data["items"]:  # every page: graders are few
            data = client.get("/graders/getGraderList", type=type, pageSize=PAGE_SIZE, page=data["page"] + 1)
            items += data["items"]
        print_result({"total": len(items), "items": items}, _list_table(items), as_json)

    call_server(ctx.obj, action)


@graders_app.command("show")
def show(ctx: typer.Context, ref: str = typer.Argument(..., metavar="NAME|ID", help=REF_HELP),
         as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """A stored grader and its object."""
    call_server(ctx.obj, lambda client: print_result(data := _grader(client, ref), _detail_view(data), as_json))


@graders_app.command("delete")
def delete(ctx: typer.Context, ref: str = typer.Argument(..., metavar="NAME|ID", help=REF_HELP)) -> None:
    """Delete a stored grader (tasks and evaluations keep the grader objects they resolved)."""
    def action(client: ApiClient) -> None:
        grader = _grader(client, ref)
        client.delete("/graders/deleteGrader", id=grader["id"])
        console.print(f"deleted grader {grader['id']} {grader['name']}", highlight=False)

    call_server(ctx.obj, action)


@graders_app.command("run")
def run(ctx: typer.Context, ref: str = typer.Argument(..., metavar="NAME|ID", help=REF_HELP),
        samples: Path = typer.Option(..., "--samples", "-s", metavar="FILE.jsonl", help=SAMPLES_HELP),
        as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Grade samples with a stored grader: each sample's score and reason (by line of the file), and the mean."""
    def action(client: ApiClient) -> None:
        grader = _grader(client, ref)
        numbered = read_samples(samples)
        lines = [number for number, _ in numbered]
        results: list[dict[str, Any]] = []
        size = grader["maxSamplesPerRun"]  # 100, fewer for a grader of many python or model sub-graders
        for start in range(0, len(numbered), size):
            batch = [sample for _, sample in numbered[start:start + size]]
            try:
                data = client.post("/graders/runGrader", {"graderId": grader["id"], "samples": batch})
            except RemoteError as exc:
                raise _at_lines(exc, samples, lines[start:start + size]) from exc
            results += [r | {"index": r["index"] + start} for r in data["results"]]
        mean = sum(r["score"] for r in results) / len(results)
        summary = {"graderId": grader["id"], "name": grader["name"], "type": grader["type"], "count": len(results),
                   "mean": mean, "results": results}
        title = f"{grader['name']} ({grader['type']}) on {samples.name}"
        print_result(summary, _scores_view(results, lines, mean, title), as_json)

    call_server(ctx.obj, action)


def _at_lines(exc: RemoteError, path: Path, lines: list[int]) -> RemoteError:
    """The server's `samples.<i>.…` fields as `FILE:line …`, where the user can find them."""
    def located(field: str) -> str:
        parts = field.split(".")
        if len(parts) >= 2 and parts[0] == "samples" and parts[1].isdigit() and int(parts[1]) < len(lines):
            rest = ".".join(parts[2:])
            return f"{path}:{lines[int(parts[1])]}" + (f" {rest}" if rest else "")
        return field

    details = [d | {"field": located(str(d.get("field") or ""))} for d in exc.details]
    message = exc.message
    first = str(exc.details[0].get("field") or "") if exc.details else ""
    if first and message.startswith(first):
        message = located(first) + message[len(first):]
    return RemoteError(exc.status, exc.code, message, details)
