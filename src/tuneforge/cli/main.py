"""The `tuneforge` command."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from tuneforge import __version__

app = typer.Typer(
    name="tuneforge", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Fine-tune large language models: LLaMA-Factory configs, a fast worker, chat with the result.",
)
console = Console(soft_wrap=True)  # long paths and messages stay on one line: copyable, greppable
err_console = Console(stderr=True, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        console.print(f"tuneforge {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")) -> None:
    """tuneforge: self-hosted fine-tuning."""


@app.command()
def train(
    config: Path = typer.Argument(..., help="A training config (YAML or JSON, LLaMA-Factory keys)."),
    overrides: list[str] = typer.Argument(None, help="key=value pairs that override the file, e.g. lr=1e-4"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show the worker's log lines too."),
    check: bool = typer.Option(False, "--check", help="Only plan: print the resolved values, datasets, truncation "
                               "and estimate and exit 0, or every problem and exit 2. Starts nothing."),
) -> None:
    """Train from a config file, with a progress bar. Ctrl-C stops gracefully (checkpoint saved)."""
    from tuneforge.cli.training import train_from_file

    raise typer.Exit(train_from_file(config, overrides or [], verbose, console, err_console, check=check))


@app.command()
def serve(
    host: str = typer.Option(None, help="Interface to listen on (default 127.0.0.1; TUNEFORGE_HOST)."),
    port: int = typer.Option(None, help="Port (default 8321; TUNEFORGE_PORT)."),
    allow: list[Path] = typer.Option(None, "--allow", help="A folder task paths (datasets, models, outputs) may "
                                     "point into, besides TUNEFORGE_HOME (repeatable; TUNEFORGE_ALLOWED_ROOTS)."),
) -> None:
    """Start the API and the task scheduler: create, watch and stop fine-tuning tasks over HTTP."""
    from tuneforge.cli.server import serve as run_server

    run_server(host, port, [p.resolve() for p in allow or []], console)


@app.command()
def chat(
    model: str = typer.Option("bundled", "--model", "-m", help="A registered model's name (on --server), a model "
                              "directory, .gguf file, hub id or 'bundled'."),
    adapter: str = typer.Option(None, "--adapter", "-a", help="A LoRA adapter directory (a run's output_dir)."),
    template: str = typer.Option(None, "--template", "-t", help="Chat template (default: the adapter's, else the "
                                 "tokenizer's own)."),
    system: str = typer.Option(None, "--system", "-s", help="System prompt."),
    message: list[str] = typer.Option(None, "--message", help="Ask this and exit (repeatable: one answer each)."),
    max_new_tokens: int = typer.Option(256, help="Longest answer in tokens."),
    temperature: float = typer.Option(0.0, help="0 = greedy."),
    top_p: float = typer.Option(1.0),
    server: str = typer.Option(None, "--server", envvar="TUNEFORGE_SERVER",
                               help="The tuneforge server whose registered models --model may name."),
) -> None:
    """Chat with a model (and adapter) in the terminal. /clear resets the history, /exit quits."""
    from tuneforge.cli.chatting import run_chat
    from tuneforge.cli.quiet import quiet_libraries

    quiet_libraries()

    raise typer.Exit(run_chat(model, adapter, template, system, message or [], max_new_tokens, temperature, top_p,
                              console, err_console, server))


@app.command()
def demo(
    output_dir: Path = typer.Option(None, help="Where the demo adapter goes (default: ~/.tuneforge/demo)."),
    epochs: float = typer.Option(None, help="Override the demo's number of epochs."),
) -> None:
    """Fine-tune the bundled SmolLM2-135M-Instruct to be "Forge", then compare its answers before and after."""
    from tuneforge.cli.demo import run_demo
    from tuneforge.cli.quiet import quiet_libraries

    quiet_libraries()

    raise typer.Exit(run_demo(output_dir, epochs, console, err_console))


def _register_remote_commands() -> None:
    """The HTTP clients of a tuneforge server: tasks, experiments, datasets, models, deployments, devices."""
    from tuneforge.cli.datasets import datasets_app
    from tuneforge.cli.evaluations import eval_app
    from tuneforge.cli.graders import graders_app
    from tuneforge.cli.models import deploy_app, models_app
    from tuneforge.cli.tasks import experiments_app, gpus, tasks_app
    from tuneforge.cli.users import users_app

    app.add_typer(tasks_app, name="tasks")
    app.add_typer(datasets_app, name="datasets")
    app.add_typer(experiments_app, name="experiments")
    app.add_typer(models_app, name="models")
    app.add_typer(deploy_app, name="deploy")
    app.add_typer(eval_app, name="eval")
    app.add_typer(graders_app, name="graders")
    app.add_typer(users_app, name="users")
    app.command("gpus")(gpus)


_register_remote_commands()

if __name__ == "__main__":
    app()
