"""`tuneforge tasks …`, `tuneforge experiments …` and `tuneforge gpus`: the task API's client over HTTP.

Exit codes: 0 done; 1 no server, a server fault or a failed task; 2 the server (or the config) refused the input;
130 Ctrl-C while following (the task keeps running)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console, RenderableType

from tuneforge.cli.remote import (
    SERVER_ENV,
    ApiClient,
    RemoteError,
    ServerUnavailable,
    absolute_if_local,
    server_url,
    task_body,
    training_changes,
)
from tuneforge.cli.task_views import (
    TaskFollower,
    created_view,
    detail_view,
    experiment_list_table,
    experiment_table,
    gpu_table,
    task_table,
)

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 1, 2, 130

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

tasks_app = typer.Typer(no_args_is_help=True, help="Create, watch, stop, copy, resume and delete fine-tuning tasks "
                        "on a tuneforge server (`tuneforge serve`).")
experiments_app = typer.Typer(no_args_is_help=True, help="Experiments: tasks that share model, data and method, "
                              "compared side by side.")

SERVER_HELP = f"The tuneforge server (default http://127.0.0.1:8321; {SERVER_ENV})."
JSON_HELP = "Print the server's JSON as it is."


@tasks_app.callback()
@experiments_app.callback()
def _server_option(ctx: typer.Context,
                   server: str = typer.Option(None, "--server", envvar=SERVER_ENV, help=SERVER_HELP)) -> None:
    ctx.obj = server_url(server)


def call_server(url: str, action: Callable[[ApiClient], int | None]) -> None:
    """Runs `action` with a client; the server's refusals become a message and an exit code, never a traceback."""
    from tuneforge.schemas import ConfigError

    client = ApiClient(url)
    try:
        code = action(client) or 0
    except ServerUnavailable as exc:
        err_console.print(f"[red]error:[/red] {exc}", highlight=False)
        code = EXIT_FAILED
    except RemoteError as exc:
        first, *rest = exc.lines()
        err_console.print(f"[red]error:[/red] {first}", highlight=False)
        for line in rest:
            err_console.print(f"  {line}", highlight=False, markup=False)
        code = EXIT_BAD_INPUT if exc.is_client_error else EXIT_FAILED
    except ConfigError as exc:
        err_console.print(f"[red]error:[/red] {exc}", highlight=False, markup=False)
        code = EXIT_BAD_INPUT
    finally:
        client.close()
    raise typer.Exit(code)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def print_result(data: Any, view: RenderableType, as_json: bool) -> None:
    """--json prints what the server sent (for scripts); otherwise the Rich view."""
    if as_json:
        print_json(data)
    else:
        console.print(view)


# -- tasks -----------------------------------------------------------------------------------------------------------
@tasks_app.command("create")
def create(
    ctx: typer.Context,
    config: Path = typer.Argument(..., help="A LLaMA-Factory training config (YAML or JSON)."),
    overrides: list[str] = typer.Argument(None, help="key=value pairs that override the file, e.g. lr=1e-4"),
    name: str = typer.Option(..., "--name", "-n", help="Task name: lowercase letters, digits and '-'."),
    description: str = typer.Option("", "--description", help="Free text shown with the task."),
    base_model: str = typer.Option(None, "--base-model", help="Overrides model_name_or_path of the file."),
    dataset: str = typer.Option(None, "--dataset", help="Overrides dataset of the file."),
    output: str = typer.Option(None, "--output", help="Overrides output_dir (default: the file's, else "
                               "the server's outputs folder)."),
    gpus: str = typer.Option(None, "--gpus", help='Exactly these devices, e.g. "0,1".'),
    gpu_count: int = typer.Option(None, "--gpu-count", help="Any N free devices (default 1)."),
    experiment: int = typer.Option(None, "--experiment", help="Add the task to this experiment."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Then follow its log and progress until it ends."),
) -> None:
    """Create a task from a config file; it is validated by the server before any compute is spent."""
    def action(client: ApiClient) -> int:
        body = task_body(config, overrides or [], name=name, description=description, base_model=base_model,
                         dataset=dataset, output=output, gpus=gpus, gpu_count=gpu_count, experiment=experiment)
        task = client.post("/finetuning/createTask", body)
        console.print(created_view(task))
        return follow_task(client, task["id"], offset=0) if follow else 0

    call_server(ctx.obj, action)


@tasks_app.command("list")
def list_tasks(
    ctx: typer.Context,
    status: str = typer.Option(None, "--status", help="Only these statuses, comma-separated: running,pending"),
    owner: int = typer.Option(None, "--owner", help="Only this owner's tasks (user id)."),
    name: str = typer.Option(None, "--name", help="Name or description contains this text."),
    experiment: int = typer.Option(None, "--experiment", help="Only this experiment's tasks."),
    page: int = typer.Option(1, "--page", min=1),
    page_size: int = typer.Option(20, "--page-size", min=1, max=200),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Tasks, newest first: status, progress, loss, tokens, elapsed time and ETA."""

    def action(client: ApiClient) -> None:
        result = client.get("/finetuning/getTaskList", status=status, ownerId=owner, name=name,
                            experimentId=experiment, page=page, pageSize=page_size)
        if as_json:
            print_json(result)
            return
        console.print(task_table(result["items"], result["total"], page, page_size))
        shown_to = (page - 1) * page_size + len(result["items"])
        if shown_to < result["total"]:
            console.print(f"more: --page {page + 1}", style="dim")

    call_server(ctx.obj, action)


@tasks_app.command("show")
def show(ctx: typer.Context, task_id: int = typer.Argument(..., metavar="ID"),
         as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """One task: status, progress, loss, devices, the executed command, output, checkpoints, error."""

    def action(client: ApiClient) -> None:
        task = client.get("/finetuning/getTask", id=task_id)
        print_result(task, detail_view(task), as_json)

    call_server(ctx.obj, action)


@tasks_app.command("logs")
def logs(
    ctx: typer.Context,
    task_id: int = typer.Argument(..., metavar="ID"),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines, with a progress bar, "
                                "until the task ends (exit 0 completed/stopped, 1 failed)."),
    tail: int = typer.Option(None, "--tail", min=1, help="Only the last N lines (then follow, with -f)."),
) -> None:
    """The task's train.log."""

    def action(client: ApiClient) -> int:
        offset = 0
        if tail is not None:
            chunk = client.get("/finetuning/getTaskLog", id=task_id, tail=tail)
            _print_lines(chunk["lines"])
            offset = chunk["nextOffset"]
        if follow:
            return follow_task(client, task_id, offset=offset)
        if tail is None:
            _print_whole_log(client, task_id)
        return 0

    call_server(ctx.obj, action)


def _print_whole_log(client: ApiClient, task_id: int) -> None:
    offset = 0
    while True:  # the server answers in chunks of at most 256 KiB
        chunk = client.get("/finetuning/getTaskLog", id=task_id, offset=offset)
        _print_lines(chunk["lines"])
        if chunk["nextOffset"] <= offset:
            return
        offset = chunk["nextOffset"]


def _print_lines(lines: list[str]) -> None:
    for line in lines:
        console.print(line, markup=False, highlight=False, emoji=False)


def follow_task(client: ApiClient, task_id: int, offset: int | None) -> int:
    follower = TaskFollower(client, task_id, console)
    try:
        return follower.run(offset)
    except KeyboardInterrupt:
        follower.close()
        console.print(f"stopped following; task {task_id} keeps running on the server. Stop it with: "
                      f"tuneforge tasks stop {task_id}", highlight=False)
        return EXIT_INTERRUPTED


@tasks_app.command("stop")
def stop(ctx: typer.Context, task_id: int = typer.Argument(..., metavar="ID")) -> None:
    """Stop gracefully: the worker finishes its step and saves a checkpoint (resume it later)."""

    def action(client: ApiClient) -> None:
        task = client.post("/finetuning/stopTask", {"id": task_id})
        if task["status"] == "stopping":
            console.print(f"stopping task {task_id} {task['name']}: it saves a checkpoint, then stops "
                          f"(watch: tuneforge tasks logs {task_id} -f)", highlight=False)
        else:
            console.print(f"task {task_id} {task['name']} is {task['status']}", highlight=False)

    call_server(ctx.obj, action)


@tasks_app.command("delete")
def delete(ctx: typer.Context, task_id: int = typer.Argument(..., metavar="ID"),
           yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")) -> None:
    """Delete a task, its logs and checkpoints (a running task is stopped first). The output model is kept."""

    def action(client: ApiClient) -> int:
        task = client.get("/finetuning/getTask", id=task_id)
        if not yes:
            running = " It is running and will be stopped." if task["status"] in ("running", "stopping") else ""
            question = (f"Delete task {task_id} {task['name']} ({task['status']}), its logs and checkpoints?{running} "
                        f"The output folder {task['outputPath']} is kept.")
            if not typer.confirm(question, default=False):
                console.print("nothing deleted")
                return EXIT_FAILED
        result = client.delete("/finetuning/deleteTask", id=task_id)
        kept = "kept" if result.get("outputKept") else "not written (the task produced no output)"
        console.print(f"deleted task {task_id} {task['name']}; output folder {result.get('outputPath')}: {kept}",
                      highlight=False)
        return 0

    call_server(ctx.obj, action)


@tasks_app.command("copy")
def copy(
    ctx: typer.Context,
    task_id: int = typer.Argument(..., metavar="ID"),
    changes: list[str] = typer.Argument(None, help="key=value training arguments to change, e.g. learning_rate=5e-5"),
    name: str = typer.Option(None, "--name", "-n", help="Name of the copy (default: NAME-copy)."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Then follow it until it ends."),
) -> None:
    """A new task with the same parameters (and these changes) and a new name."""
    def action(client: ApiClient) -> int:
        body = {"id": task_id, "name": name, "trainingArgs": training_changes(changes or [])}
        task = client.post("/finetuning/copyTask", {k: v for k, v in body.items() if v is not None})
        console.print(created_view(task))
        return follow_task(client, task["id"], offset=0) if follow else 0

    call_server(ctx.obj, action)


@tasks_app.command("resume")
def resume(ctx: typer.Context, task_id: int = typer.Argument(..., metavar="ID"),
           follow: bool = typer.Option(False, "--follow", "-f", help="Then follow it until it ends.")) -> None:
    """A stopped or failed task continues from its last checkpoint."""

    def action(client: ApiClient) -> int:
        task = client.post("/finetuning/resumeTask", {"id": task_id})
        console.print(f"task {task_id} {task['name']} is {task['status']}: it continues from its last checkpoint",
                      highlight=False)
        return follow_task(client, task_id, offset=None) if follow else 0

    call_server(ctx.obj, action)


# -- experiments and devices -----------------------------------------------------------------------------------------
@experiments_app.command("create")
def create_experiment(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Experiment name: lowercase letters, digits and '-'."),
    base_model: str = typer.Option(..., "--base-model", help="Model directory, .gguf file, hub id or 'bundled'."),
    dataset: str = typer.Option(..., "--dataset", help="Dataset file, folder or dataset_info.json name(s)."),
    template: str = typer.Option("default", "--template"),
    finetuning_type: str = typer.Option("lora", "--finetuning-type"),
    stage: str = typer.Option("sft", "--stage"),
    description: str = typer.Option("", "--description"),
) -> None:
    """Group tasks that share model, data, template, method and stage (add tasks with `tasks create --experiment`)."""

    def action(client: ApiClient) -> None:
        body = {"name": name, "description": description, "baseModel": absolute_if_local(base_model, Path.cwd()),
                "datasetPath": ",".join(absolute_if_local(d, Path.cwd()) for d in dataset.split(",")),
                "template": template, "finetuningType": finetuning_type, "stage": stage}
        experiment = client.post("/finetuning/createExperiment", body)
        console.print(f"created experiment {experiment['id']} {experiment['name']}; add tasks with: tuneforge tasks "
                      f"create CONFIG --name NAME --experiment {experiment['id']}", highlight=False)

    call_server(ctx.obj, action)


@experiments_app.command("list")
def list_experiments(ctx: typer.Context, name: str = typer.Option(None, "--name", help="Name contains this text."),
                     owner: int = typer.Option(None, "--owner"),
                     as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Experiments, newest first."""

    def action(client: ApiClient) -> None:
        result = client.get("/finetuning/getExperimentList", name=name, ownerId=owner)
        print_result(result, experiment_list_table(result["items"]), as_json)

    call_server(ctx.obj, action)


@experiments_app.command("show")
def show_experiment(ctx: typer.Context, experiment_id: int = typer.Argument(..., metavar="ID"),
                    as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """An experiment's tasks with their final metrics side by side; ★ marks the best run."""

    def action(client: ApiClient) -> None:
        experiment = client.get("/finetuning/getExperiment", id=experiment_id)
        print_result(experiment, experiment_table(experiment), as_json)

    call_server(ctx.obj, action)


def gpus(server: str = typer.Option(None, "--server", envvar=SERVER_ENV, help=SERVER_HELP),
         as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """The server's devices (GPUs, or CPU slots), their memory and the tasks on them."""

    def action(client: ApiClient) -> None:
        inventory = client.get("/system/gpus")
        print_result(inventory, gpu_table(inventory), as_json)

    call_server(server_url(server), action)

