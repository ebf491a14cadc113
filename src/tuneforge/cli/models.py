"""`tuneforge models …` (registry, publish, export) and `tuneforge deploy …` (serving processes) over HTTP."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from pydantic.alias_generators import to_camel
from rich.markup import escape
from rich.table import Table

from tuneforge.cli.dataset_views import size
from tuneforge.cli.remote import SERVER_ENV, ApiClient, absolute_if_local, server_url
from tuneforge.cli.tasks import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    JSON_HELP,
    SERVER_HELP,
    call_server,
    console,
    err_console,
    print_json,
    print_result,
)

models_app = typer.Typer(no_args_is_help=True, help="The model registry: base models and published fine-tunes.")
deploy_app = typer.Typer(no_args_is_help=True, help="Deployments: serve a registered model behind the OpenAI-"
                         "compatible /v1 API of the server.")
STATUS_STYLE = {"running": "green", "starting": "yellow", "restarting": "yellow", "failed": "red", "stopped": "dim"}
EXPORT_STYLE = {"running": "yellow", "completed": "green", "failed": "red", "stopped": "dim"}
EXPORT_POLL_S = 2.0


@models_app.callback()
@deploy_app.callback()
def _server_option(ctx: typer.Context,
                   server: str = typer.Option(None, "--server", envvar=SERVER_ENV, help=SERVER_HELP)) -> None:
    ctx.obj = server_url(server)


def _model_table(items: list[dict[str, Any]]) -> Table:
    table = Table("id", "name", "kind", "status", "base model", "task", "step", "eval loss", "created")
    for m in items:
        metrics = m.get("metrics") or {}
        loss = metrics.get("eval_loss")
        status = m.get("status", "ready")
        status = f"importing {m['progress']:.0f}%" if status == "importing" else status
        table.add_row(str(m["id"]), m["name"], m["kind"], status, m["baseModel"], str(m.get("taskId") or "—"),
                      str(m.get("checkpointStep") or "—"), f"{loss:.4f}" if loss is not None else "—",
                      time.strftime("%Y-%m-%d %H:%M", time.localtime(m["createdAt"])))
    return table


@models_app.command("list")
def list_models(ctx: typer.Context, kind: str = typer.Option(None, help="base | finetuned"),
                as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Registered models, newest first."""
    def action(client: ApiClient) -> None:
        data = client.get("/models/getModelList", kind=kind)
        print_result(data, _model_table(data["items"]), as_json)

    call_server(ctx.obj, action)


@models_app.command("show")
def show_model(ctx: typer.Context, model_id: int = typer.Argument(..., metavar="ID"),
               as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """A model and its lineage (base, task, checkpoint, datasets, metrics)."""
    def action(client: ApiClient) -> None:
        data = client.get("/models/getModel", id=model_id)
        lineage = data.get("lineage") or {}
        table = Table.grid(padding=(0, 2))
        for key, value in (("name", data["name"]), ("kind", data["kind"]), ("base model", data["baseModel"]),
                           ("adapter", data.get("adapterPath") or "—"), ("model", data.get("modelPath") or "—"),
                           ("task", (lineage.get("task") or {}).get("name") or "—"),
                           ("checkpoint step", lineage.get("checkpointStep") or "final"),
                           ("datasets", ", ".join(lineage.get("datasets") or []) or "—"),
                           ("metrics", ", ".join(f"{k} {v:.4g}" for k, v in (lineage.get("metrics") or {}).items()
                                                 if isinstance(v, int | float)) or "—")):
            table.add_row(f"[bold]{key}[/bold]", str(value))
        print_result(data, table, as_json)

    call_server(ctx.obj, action)


@models_app.command("publish")
def publish(ctx: typer.Context, task_id: int = typer.Argument(..., metavar="TASK_ID"),
            name: str = typer.Option(..., "--name", help="The model's name (lowercase letters, digits, '-')."),
            step: int = typer.Option(None, "--step", help="A checkpoint step; default: the task's final model."),
            description: str = typer.Option("", "--description")) -> None:
    """Publish a task's final model (or a checkpoint) into the registry."""
    def action(client: ApiClient) -> None:
        data = client.post("/models/publishModel", {"taskId": task_id, "name": name, "checkpointStep": step,
                                                    "description": description})
        console.print(f"published model {data['id']} [bold]{data['name']}[/bold] from task {task_id}"
                      f" (step {data.get('checkpointStep')})")

    call_server(ctx.obj, action)


@models_app.command("register")
def register(ctx: typer.Context, name: str = typer.Argument(...),
             source: str = typer.Argument(..., help="A model folder, a .gguf file, a hub id or 'bundled'.")) -> None:
    """Register a base model."""
    def action(client: ApiClient) -> None:
        data = client.post("/models/registerModel", {"name": name, "source": source})
        console.print(f"registered base model {data['id']} [bold]{data['name']}[/bold]")

    call_server(ctx.obj, action)


@models_app.command("delete")
def delete_model(ctx: typer.Context, model_id: int = typer.Argument(..., metavar="ID")) -> None:
    """Remove a model from the registry (a task's output folder is kept)."""
    def action(client: ApiClient) -> None:
        name = client.get("/models/getModel", id=model_id)["name"]
        client.delete("/models/deleteModel", id=model_id)
        console.print(f"deleted model {model_id} {name} from the registry", highlight=False)

    call_server(ctx.obj, action)


# -- export ----------------------------------------------------------------------------------------------------------
@models_app.command("export")
def export_model(
    ctx: typer.Context,
    model_id: int = typer.Argument(..., metavar="ID"),
    dtype: str | None = typer.Option(None, "--dtype", help="auto (default) | float32 | float16 | bfloat16"),
    max_shard_size_gb: float | None = typer.Option(None, "--max-shard-size-gb",
                                                   help="Largest safetensors file, in GB (default 5)."),
    no_merge: bool = typer.Option(False, "--no-merge", help="Export the LoRA adapter as it is, not merged."),
    gguf: str | None = typer.Option(None, "--gguf", help="Also write GGUF for llama.cpp: f16 | q8_0 | q4_K_M | "
                                    "q5_K_M."),
    quantization_bit: int | None = typer.Option(None, "--quantization-bit",
                                                help="4 | 8: quantize the weights with GPTQ (for vLLM)."),
    quantization_dataset: str | None = typer.Option(
        None, "--quantization-dataset", help="Calibration data, required with --quantization-bit: a managed dataset "
        "(name or name@version), a bundled one such as instructions, or a file / folder on the server."),
    quantization_nsamples: int | None = typer.Option(None, "--quantization-nsamples",
                                                     help="Calibration samples (default 128)."),
    quantization_maxlen: int | None = typer.Option(None, "--quantization-maxlen",
                                                   help="Tokens per calibration sample (default 1024)."),
    quantization_group_size: int | None = typer.Option(
        None, "--quantization-group-size", help="Input columns per scale: 32 | 64 | 128 (default) | 256, or -1 for "
        "one per row."),
    hub_repo_id: str | None = typer.Option(None, "--hub-repo-id", help="Push to this Hugging Face Hub repo."),
    output_dir: str | None = typer.Option(None, "--output-dir",
                                          help="Default: the server's HOME/exported/<model>-<job>."),
    wait: bool = typer.Option(False, "--wait", help="Follow the export until it ends (exit 1 when it fails)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Export a model in the background: merged / sharded safetensors, optionally GPTQ or GGUF, a hub push."""
    # Only what the user gave is sent: the server's defaults apply to the rest, as in the console's dialog.
    calibration = (",".join(absolute_if_local(d, Path.cwd()) for d in quantization_dataset.split(","))
                   if quantization_dataset else None)  # each local file or folder made absolute, as tasks do
    body = {"id": model_id} | given(
        dtype=dtype, max_shard_size_gb=max_shard_size_gb, merge=False if no_merge else None, gguf=gguf,
        quantization_bit=quantization_bit, quantization_nsamples=quantization_nsamples,
        quantization_dataset=calibration, quantization_maxlen=quantization_maxlen,
        quantization_group_size=quantization_group_size,
        hub_repo_id=hub_repo_id, output_dir=str(Path(output_dir).expanduser().resolve()) if output_dir else None)

    def action(client: ApiClient) -> int:
        job = client.post("/models/exportModel", body)
        if not wait:
            if as_json:
                print_json(job)
            else:
                console.print(f"export {job['id']} started into {job['outputDir']}; follow it with: tuneforge models "
                              "exports", highlight=False)
            return 0
        return follow_export(client, job, as_json)

    call_server(ctx.obj, action)


def given(**options: Any) -> dict[str, Any]:
    """The options that are set, under the API's camelCase names."""
    return {to_camel(key): value for key, value in options.items() if value is not None}


def follow_export(client: ApiClient, job: dict[str, Any], as_json: bool) -> int:
    """Poll getExport until the job ends, printing each new progress line; then its files, or its error."""
    shown = None
    try:
        while job["status"] == "running":
            if not as_json and (line := progress_line(job)) != shown:
                console.print(line, highlight=False, markup=False)
                shown = line
            time.sleep(EXPORT_POLL_S)
            job = client.get("/models/getExport", id=job["id"])
    except KeyboardInterrupt:
        console.print(f"stopped waiting; export {job['id']} goes on on the server. See it with: tuneforge models "
                      "exports", highlight=False)
        return EXIT_INTERRUPTED
    if as_json:
        print_json(job)
    else:
        print_outcome(job)
    return 0 if job["status"] == "completed" else EXIT_FAILED


def progress_line(job: dict[str, Any]) -> str:
    parts = [f"{job['percentage']:5.1f} %", job.get("stage") or "starting"]
    return " ".join(parts) + (f" — {job['message']}" if job.get("message") else "")


def print_outcome(job: dict[str, Any]) -> None:
    if job["status"] != "completed":
        error = escape(job.get("error") or "no error reported")  # a traceback's [brackets] are not markup
        err_console.print(f"[red]error:[/red] export {job['id']} {job['status']}: {error}", highlight=False)
        if job.get("hint"):
            err_console.print(f"  hint: {job['hint']}", highlight=False, markup=False)
        return
    console.print(f"export {job['id']} completed into {job['outputDir']}", highlight=False)
    table = Table("file", "size")
    sizes = job.get("sizes") or {}
    for name in job.get("files") or []:
        table.add_row(name, size(sizes.get(name)))
    console.print(table)


@models_app.command("exports")
def list_exports(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Export jobs, newest first."""
    def action(client: ApiClient) -> None:
        data = client.get("/models/getExportList")
        names = {m["id"]: m["name"] for m in client.get("/models/getModelList")["items"]} if data["items"] else {}
        print_result(data, _export_table(data["items"], names), as_json)

    call_server(ctx.obj, action)


def _export_table(items: list[dict[str, Any]], names: dict[int, str]) -> Table:
    table = Table("id", "model", "status", "progress", "dtype", "quantization", "output")
    for job in items:
        style = EXPORT_STYLE.get(job["status"], "")
        table.add_row(job["id"], names.get(job["modelId"], str(job["modelId"])),
                      f"[{style}]{job['status']}[/{style}]", f"{job['percentage']:.0f} %", job["dtype"],
                      quantization_text(job), job["outputDir"])
    return table


def quantization_text(job: dict[str, Any]) -> str:
    """"GGUF q8_0", "GPTQ int4 · g128", both, or "—"."""
    parts = [f"GGUF {job['gguf']}"] if job.get("gguf") else []
    if gptq := job.get("quantization"):
        group = f"g{gptq['groupSize']}" if gptq["groupSize"] > 0 else "one per row"
        parts.append(f"GPTQ int{gptq['bits']} · {group}")
    return ", ".join(parts) or "—"


# -- deploy ----------------------------------------------------------------------------------------------------------
def _deploy_table(items: list[dict[str, Any]]) -> Table:
    table = Table("id", "name", "model", "status", "port", "restarts", "error")
    for d in items:
        style = STATUS_STYLE.get(d["status"], "")
        error = (d.get("errorMessage") or "").splitlines()[0] if d.get("errorMessage") else ""
        table.add_row(str(d["id"]), d["name"], d["modelName"], f"[{style}]{d['status']}[/{style}]",
                      str(d.get("port") or "—"), str(d["restarts"]), error[:60])
    return table


@deploy_app.command("create")
def create_deployment(ctx: typer.Context, name: str = typer.Argument(..., help="What clients pass as `model`."),
                      model_id: int = typer.Option(..., "--model-id", help="A registered model's id."),
                      engine: str = typer.Option("transformers", help="transformers | vllm (GPU) | llamacpp (GGUF)"),
                      wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait until it serves.")) -> None:
    """Serve a registered model; then use it with any OpenAI client at SERVER/v1."""
    def action(client: ApiClient) -> int:
        data = client.post("/deployments/createDeployment", {"name": name, "modelId": model_id, "engine": engine})
        with console.status(f"starting {name}…"):
            while wait and data["status"] in ("starting", "restarting"):
                time.sleep(0.5)
                data = client.get("/deployments/getDeployment", id=data["id"])
        console.print(_deploy_table([data]))
        if data["status"] == "running":
            console.print(f"OpenAI-compatible: base_url={ctx.obj}/v1  model={name!r}")
        return 0 if data["status"] in ("running", "starting") else 1

    call_server(ctx.obj, action)


@deploy_app.command("list")
def list_deployments(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Deployments and their status."""
    def action(client: ApiClient) -> None:
        data = client.get("/deployments/getDeploymentList")
        print_result(data, _deploy_table(data["items"]), as_json)

    call_server(ctx.obj, action)


@deploy_app.command("logs")
def deployment_logs(ctx: typer.Context, deployment_id: int = typer.Argument(..., metavar="ID"),
                    tail: int = typer.Option(100, "--tail")) -> None:
    """The serving process's log."""
    def action(client: ApiClient) -> None:
        for line in client.get("/deployments/getDeploymentLog", id=deployment_id, tail=tail)["lines"]:
            console.print(line, markup=False, highlight=False)

    call_server(ctx.obj, action)


@deploy_app.command("stop")
def stop_deployment(ctx: typer.Context, deployment_id: int = typer.Argument(..., metavar="ID")) -> None:
    """Stop the serving process."""
    call_server(ctx.obj, lambda c: console.print(_deploy_table([c.post("/deployments/stopDeployment",
                                                                       {"id": deployment_id})])))


@deploy_app.command("start")
def start_deployment(ctx: typer.Context, deployment_id: int = typer.Argument(..., metavar="ID")) -> None:
    """Start a stopped or failed deployment again."""
    call_server(ctx.obj, lambda c: console.print(_deploy_table([c.post("/deployments/startDeployment",
                                                                       {"id": deployment_id})])))


@deploy_app.command("delete")
def delete_deployment(ctx: typer.Context, deployment_id: int = typer.Argument(..., metavar="ID")) -> None:
    """Stop and remove a deployment."""
    def action(client: ApiClient) -> None:
        name = client.delete("/deployments/deleteDeployment", id=deployment_id)["name"]
        console.print(f"deleted deployment {deployment_id} {name}: its serving process is stopped and /v1 no "
                      f"longer routes {name!r}", highlight=False)

    call_server(ctx.obj, action)
