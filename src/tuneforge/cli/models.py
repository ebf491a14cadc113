"""`tuneforge models …` (registry, publish) and `tuneforge deploy …` (serving processes) over HTTP."""

from __future__ import annotations

import time
from typing import Any

import typer
from rich.table import Table

from tuneforge.cli.remote import SERVER_ENV, ApiClient, server_url
from tuneforge.cli.tasks import JSON_HELP, SERVER_HELP, call_server, console, print_result

models_app = typer.Typer(no_args_is_help=True, help="The model registry: base models and published fine-tunes.")
deploy_app = typer.Typer(no_args_is_help=True, help="Deployments: serve a registered model behind the OpenAI-"
                         "compatible /v1 API of the server.")
STATUS_STYLE = {"running": "green", "starting": "yellow", "restarting": "yellow", "failed": "red", "stopped": "dim"}


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
