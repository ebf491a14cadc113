"""`tuneforge chat`: a terminal conversation with a model, streamed token by token."""

from __future__ import annotations

from rich.console import Console


def run_chat(model: str, adapter: str | None, template: str | None, system: str | None, messages: list[str],
             max_new_tokens: int, temperature: float, top_p: float, console: Console, err: Console) -> int:
    from tuneforge.engine.errors import EngineError
    from tuneforge.engine.generate import GenerationSettings, load_chat_model

    try:
        with console.status(f"loading {model}" + (f" + {adapter}" if adapter else "")):
            chat_model = load_chat_model(model, adapter, template, system)
    except EngineError as exc:
        err.print(f"[red]error:[/red] {exc}" + (f"\nwhat to do: {exc.hint}" if exc.hint else ""), highlight=False)
        return 2
    settings = GenerationSettings(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p)
    if messages:
        for text in messages:
            answer = chat_model.chat([{"role": "user", "content": text}], settings)
            console.print(answer, highlight=False)
        return 0
    return _repl(chat_model, settings, console)


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
