"""`tuneforge datasets …`: the dataset API's client over HTTP (upload with a progress bar, validation followed to
its end, the report by file:line, statistics, the template preview, versions, deletion).

Exit codes: 0 done; 1 no server or a server fault; 2 the server (or the command line) refused the input, or the
dataset is invalid; 130 Ctrl-C while waiting for validation (it goes on on the server)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from tuneforge.cli.dataset_views import (
    byte_progress,
    dataset_table,
    detail_view,
    percent_progress,
    preview_view,
    stats_view,
    uploaded_view,
    validation_view,
)
from tuneforge.cli.remote import SERVER_ENV, ApiClient, absolute_if_local, server_url
from tuneforge.cli.tasks import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    JSON_HELP,
    SERVER_HELP,
    call_server,
    console,
    print_json,
    print_result,
)

DATASET_SUFFIXES = (".json", ".jsonl")  # what the server stores (json and jsonl only)
INFO_FILE = "dataset_info.json"  # LLaMA-Factory's index sits next to the data; it is not data
POLL_S = 0.3

datasets_app = typer.Typer(no_args_is_help=True, help="Upload, validate, inspect and version datasets on a "
                           "tuneforge server (`tuneforge serve`); tasks use them by name@vN.")

FILES_HELP = ".json / .jsonl files, or folders of them (train / valid / test files become splits)."
VERSION_HELP = "Which version (default: the latest)."


@datasets_app.callback()
def _server_option(ctx: typer.Context,
                   server: str = typer.Option(None, "--server", envvar=SERVER_ENV, help=SERVER_HELP)) -> None:
    ctx.obj = server_url(server)


# -- create / add-version --------------------------------------------------------------------------------------------
@datasets_app.command("create")
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Lowercase letters, digits and '-', at most 63 characters, no Chinese."),
    sources: list[Path] = typer.Argument(None, metavar="FILE_OR_DIR...", help=FILES_HELP),
    description: str = typer.Option("", "--description", help="Free text shown with the dataset."),
    formatting: str = typer.Option(None, "--format", "--formatting", help="alpaca | sharegpt (default: detected "
                                   "from the first record)."),
    purpose: str = typer.Option("sft", "--purpose", help="sft | pt | preference | kto: what the data trains."),
    columns: str = typer.Option(None, "--columns", help='dataset_info.json columns as JSON, e.g. '
                                '\'{"prompt": "q", "response": "a"}\' (default: standard names detected).'),
    tags: str = typer.Option(None, "--tags", help='dataset_info.json tags (ShareGPT roles) as JSON, e.g. '
                             '\'{"role_tag": "from", "content_tag": "value"}\'.'),
    server_path: str = typer.Option(None, "--server-path", help="Take the files from this path on the server "
                                    "(inside its allowed folders) instead of uploading."),
    uri: str = typer.Option(None, "--uri", help="Take the files from an object store, e.g. s3://bucket/prefix."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Follow the validation and print its result."),
) -> None:
    """Create a dataset from uploaded files, a server path or a URI, then follow its validation (exit 2: invalid)."""

    def action(client: ApiClient) -> int:
        paths = source_files(sources or [], server_path, uri)
        form = {"name": name, "description": description, "formatting": formatting, "purpose": purpose,
                "columns": columns, "tags": tags, **_remote_source(server_path, uri)}
        dataset = send(client, "/datasets/createDataset", form, paths)
        version = dataset["versions"][-1]
        console.print(uploaded_view(f"created dataset {dataset['id']} {dataset['name']}", version))
        return follow_validation(client, dataset["id"], version["version"]) if wait else _later(dataset["id"])

    call_server(ctx.obj, action)


@datasets_app.command("add-version")
def add_version(
    ctx: typer.Context,
    dataset_id: int = typer.Argument(..., metavar="ID"),
    sources: list[Path] = typer.Argument(None, metavar="FILE_OR_DIR...", help=FILES_HELP),
    server_path: str = typer.Option(None, "--server-path", help="Take the files from this path on the server."),
    uri: str = typer.Option(None, "--uri", help="Take the files from an object store, e.g. s3://bucket/prefix."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Follow the validation and print its result."),
) -> None:
    """Upload a new immutable version; identical files are not stored twice (the existing version is named)."""

    def action(client: ApiClient) -> int:
        paths = source_files(sources or [], server_path, uri)
        form = {"id": dataset_id, **_remote_source(server_path, uri)}
        version = send(client, "/datasets/createDatasetVersion", form, paths)
        if version.get("unchanged"):
            console.print(f"unchanged: same files as v{version['version']} ({version['reference']})",
                          highlight=False)
        else:
            console.print(uploaded_view(f"added version {version['version']} to dataset {dataset_id}", version))
        return follow_validation(client, dataset_id, version["version"]) if wait else _later(dataset_id)

    call_server(ctx.obj, action)


def source_files(sources: list[Path], server_path: str | None, uri: str | None) -> list[Path]:
    """The files to upload: each file as given, each folder's .json / .jsonl files; every problem at once."""
    from tuneforge.schemas import ConfigError, ConfigProblem

    problems: list[ConfigProblem] = []
    given = sum(bool(x) for x in (sources, server_path, uri))
    if given != 1:
        problems.append(ConfigProblem("FILE_OR_DIR", "give files or folders to upload, or --server-path, or --uri "
                                                     "(exactly one of them)"))
    files: list[Path] = []
    for source in sources:
        found, problem = _files_of(source)
        files += found
        if problem:
            problems.append(ConfigProblem("FILE_OR_DIR", problem))
    seen: dict[str, Path] = {}
    for path in files:
        if path.name in seen:
            problems.append(ConfigProblem("FILE_OR_DIR", f"{path.name} is given twice ({seen[path.name]} and {path}): "
                                                         "file names must differ within a dataset version"))
        seen.setdefault(path.name, path)
    if problems:
        raise ConfigError(problems, "the command line")
    return files


def _files_of(source: Path) -> tuple[list[Path], str | None]:
    if source.is_dir():
        files = sorted(p for p in source.iterdir()
                       if p.is_file() and p.suffix.lower() in DATASET_SUFFIXES and p.name != INFO_FILE)
        return files, None if files else f"{source} holds no .json or .jsonl file"
    if not source.is_file():
        return [], f"{source} does not exist"
    if source.name == INFO_FILE:
        return [], f"{source} is LLaMA-Factory's index, not data: give the data files it names"
    if source.suffix.lower() not in DATASET_SUFFIXES:
        return [], f"{source} is not a .json or .jsonl file (convert it to JSON lines first)"
    return [source], None


def _remote_source(server_path: str | None, uri: str | None) -> dict[str, Any]:
    # a path the user typed relative to this shell means the same place to a server on this machine
    return {"path": absolute_if_local(server_path, Path.cwd()) if server_path else None, "uri": uri}


def send(client: ApiClient, endpoint: str, form: dict[str, Any], paths: list[Path]) -> Any:
    """The form with the files, a bar counting the bytes sent."""
    if not paths:
        return client.upload(endpoint, form, [])
    total = sum(path.stat().st_size for path in paths)
    with byte_progress(console) as progress:
        bar = progress.add_task(f"uploading {len(paths)} file{'s' if len(paths) > 1 else ''}", total=total)
        return client.upload(endpoint, form, paths, on_read=lambda sent: progress.advance(bar, sent))


def follow_validation(client: ApiClient, dataset_id: int, version: int) -> int:
    """Poll validateDataset until the version is valid or invalid; print the outcome (exit 2 when invalid)."""
    try:
        report = _wait(client, dataset_id, version)
    except KeyboardInterrupt:
        console.print(f"stopped waiting; validation goes on on the server. See it with: tuneforge datasets validate "
                      f"{dataset_id} --version {version}", highlight=False)
        return EXIT_INTERRUPTED
    console.print(validation_view(report))
    return outcome(report)


def _wait(client: ApiClient, dataset_id: int, version: int) -> dict[str, Any]:
    report = client.get("/datasets/validateDataset", id=dataset_id, version=version)
    if report["status"] != "validating":
        return report
    with percent_progress(console) as progress:
        bar = progress.add_task(f"validating {report['reference']}", total=100, completed=report.get("progress") or 0)
        while report["status"] == "validating":
            time.sleep(POLL_S)
            report = client.get("/datasets/validateDataset", id=dataset_id, version=version)
            progress.update(bar, completed=report.get("progress") or 0)
    return report


def outcome(report: dict[str, Any]) -> int:
    return EXIT_BAD_INPUT if report.get("status") == "invalid" else 0


def _later(dataset_id: int) -> int:
    console.print(f"validating on the server; see the result with: tuneforge datasets validate {dataset_id}",
                  highlight=False)
    return 0


# -- read ------------------------------------------------------------------------------------------------------------
@datasets_app.command("list")
def list_datasets(
    ctx: typer.Context,
    name: str = typer.Option(None, "--name", help="Only names containing this text."),
    owner: int = typer.Option(None, "--owner", help="Only this owner's datasets (user id)."),
    page: int = typer.Option(1, "--page", min=1),
    page_size: int = typer.Option(20, "--page-size", min=1, max=200),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Datasets, newest first: format, purpose, latest version, its status and rows."""

    def action(client: ApiClient) -> None:
        result = client.get("/datasets/getDatasetList", name=name, ownerId=owner, page=page, pageSize=page_size)
        if as_json:
            print_json(result)
            return
        console.print(dataset_table(_with_rows(client, result["items"]), result["total"], page, page_size))
        if (page - 1) * page_size + len(result["items"]) < result["total"]:
            console.print(f"more: --page {page + 1}", style="dim")

    call_server(ctx.obj, action)


def _with_rows(client: ApiClient, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The list's items carry no rows: the latest version's come from its detail."""
    shown = []
    for item in items:
        if "rows" not in item and item.get("latestVersion") is not None:
            versions = client.get("/datasets/getDataset", id=item["id"]).get("versions") or []
            item = {**item, "rows": versions[-1].get("rows") if versions else None}
        shown.append(item)
    return shown


@datasets_app.command("show")
def show(ctx: typer.Context, dataset_id: int = typer.Argument(..., metavar="ID"),
         as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """One dataset: format, purpose, field mapping, and its versions (status, rows, problems, files)."""

    def action(client: ApiClient) -> None:
        dataset = client.get("/datasets/getDataset", id=dataset_id)
        print_result(dataset, detail_view(dataset), as_json)

    call_server(ctx.obj, action)


@datasets_app.command("validate")
def validate(ctx: typer.Context, dataset_id: int = typer.Argument(..., metavar="ID"),
             version: int = typer.Option(None, "--version", min=1, help=VERSION_HELP),
             as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """A version's report: rows per split, every problem as file:line: field: reason (exit 2: invalid)."""

    def action(client: ApiClient) -> int:
        report = client.get("/datasets/validateDataset", id=dataset_id, version=version)
        print_result(report, validation_view(report), as_json)
        return outcome(report)

    call_server(ctx.obj, action)


@datasets_app.command("stats")
def stats(
    ctx: typer.Context,
    dataset_id: int = typer.Argument(..., metavar="ID"),
    version: int = typer.Option(None, "--version", min=1, help=VERSION_HELP),
    model: str = typer.Option(None, "--model", "-m", help="Count tokens with this model's tokenizer (a model "
                              "folder, hub id or 'bundled'; default: as stored at validation)."),
    cutoff_len: int = typer.Option(None, "--cutoff-len", min=1, help="Count the samples longer than this."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Rows, token lengths (min/p50/p95/max), samples over cutoff_len, duplicates, empty answers, histogram."""

    def action(client: ApiClient) -> None:
        result = client.get("/datasets/getDatasetStats", id=dataset_id, version=version, model=_model(model),
                            cutoffLen=cutoff_len)
        print_result(result, stats_view(result), as_json)

    call_server(ctx.obj, action)


@datasets_app.command("preview")
def preview(
    ctx: typer.Context,
    dataset_id: int = typer.Argument(..., metavar="ID"),
    version: int = typer.Option(None, "--version", min=1, help=VERSION_HELP),
    template: str = typer.Option(None, "--template", "-t", help="Chat template, as in training (default: "
                                 "'default')."),
    model: str = typer.Option(None, "--model", "-m", help="Whose tokenizer (default: 'bundled')."),
    count: int = typer.Option(5, "-n", min=1, max=50, help="How many records."),
    cutoff_len: int = typer.Option(None, "--cutoff-len", min=1, help="Truncate as training would (default 1024)."),
    train_on_prompt: bool = typer.Option(False, "--train-on-prompt", help="Train on the prompt too."),
    mask_history: bool = typer.Option(False, "--mask-history", help="Train on the last answer only."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """The first records as training sees them: trained text in green, masked text dimmed, tokens counted."""

    def action(client: ApiClient) -> None:
        result = client.get("/datasets/previewDataset", id=dataset_id, version=version, template=template,
                            model=_model(model), n=count, cutoffLen=cutoff_len,
                            trainOnPrompt=train_on_prompt or None, maskHistory=mask_history or None)
        print_result(result, preview_view(result), as_json)

    call_server(ctx.obj, action)


def _model(model: str | None) -> str | None:
    return absolute_if_local(model, Path.cwd()) if model else None


# -- delete ----------------------------------------------------------------------------------------------------------
@datasets_app.command("delete")
def delete(ctx: typer.Context, dataset_id: int = typer.Argument(..., metavar="ID"),
           yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")) -> None:
    """Delete a dataset, all its versions and files; refused while a pending or running task uses it."""

    def action(client: ApiClient) -> int:
        dataset = client.get("/datasets/getDataset", id=dataset_id)
        count = len(dataset.get("versions") or [])
        if not yes and not typer.confirm(f"Delete dataset {dataset_id} {dataset['name']}, its {count} "
                                         f"version{'s' if count != 1 else ''} and their files?", default=False):
            console.print("nothing deleted")
            return EXIT_FAILED
        client.delete("/datasets/deleteDataset", id=dataset_id)
        console.print(f"deleted dataset {dataset_id} {dataset['name']} ({count} version{'s' if count != 1 else ''})",
                      highlight=False)
        return 0

    call_server(ctx.obj, action)
