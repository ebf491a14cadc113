"""`tuneforge chat`: a terminal conversation with a model, streamed token by token."""

from __future__ import annotations

from rich.console import Console


def run_chat(model: str, adapter: str | None, template: str | None, system: str | None, messages: list[str],
             max_new_tokens: int, temperature: float, top_p: float, console: Console, err: Console,
             server: str | None = None) -> int:
    from tuneforge.cli.chat_remote import GatewayChat, find_registered
    from tuneforge.cli.remote import RemoteError
    from tuneforge.engine.errors import EngineError
    from tuneforge.engine.generate import GenerationSettings, load_chat_model

    registered = None if adapter else find_registered(model, server)
    try:
        if registered is not None and (registered.deployment and not registered.files_here):
            console.print(f"[dim]{model}: talking to deployment {registered.deployment} at {registered.server}[/dim]")
            chat_model = GatewayChat(registered.server, registered.deployment, system)
        else:
            if registered is not None:
                if not registered.files_here:
                    err.print(f"[red]error:[/red] model {model!r} is registered at {registered.server} but its files "
                              f"are not on this machine and it has no running deployment\nwhat to do: deploy it "
                              f"(`tuneforge deploy create {model} --model-id …`) or run chat on the server's host")
                    return 2
                model, adapter = registered.base, registered.adapter
            with console.status(f"loading {model}" + (f" + {adapter}" if adapter else "")):
                chat_model = load_chat_model(model, adapter, template, system)
    except EngineError as exc:
        err.print(f"[red]error:[/red] {exc}" + (f"\nwhat to do: {exc.hint}" if exc.hint else ""), highlight=False)
        return 2
    settings = GenerationSettings(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p)
    try:
        if messages:
            for text in messages:
                answer = chat_model.chat([{"role": "user", "content": text}], settings)
                console.print(answer, highlight=False)
            return 0
        return _repl(chat_model, settings, console)
    except RemoteError as exc:
        err.print(f"[red]error:[/red] {exc.message}", highlight=False)
        return 2


def _repl(chat_model, settings, console: Console) -> int:
    history: list[dict[str, str]] = []
    console.print("[dim]type a message; /clear resets the history, /exit quits[/dim]")
    while True:
        try:
            text = console.input("[bold green]you>[/bold green] ").strip()
        except (EOFError, KeyboardInterrupt):
            console.print()
            return 0
        if text in ("/exit", "/quit"):
            return 0
        if text == "/clear":
            history.clear()
            continue
        if not text:
            continue
        history.append({"role": "user", "content": text})
        console.print("[bold blue]assistant>[/bold blue] ", end="")
        answer = ""
        for piece in chat_model.stream(history, settings):
            answer += piece
            console.print(piece, end="", highlight=False, markup=False)
        console.print()
        history.append({"role": "assistant", "content": answer})
