"""`python -m tuneforge.serving --model M [--adapter DIR] [--name NAME] [--host H] [--port P] [--max-batch 8]
[--template T]`: one model behind an OpenAI-compatible API. /health says 503 until the model is loaded; a model
that fails to load ends the process with exit code 1 (so a supervisor sees it and says why in the log)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import uvicorn

from tuneforge.serving.app import ServedModel, create_app


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tuneforge.serving", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="base model: local directory, hub id, .gguf or 'bundled'")
    parser.add_argument("--adapter", help="a LoRA adapter directory (a tuneforge output_dir) applied without merging")
    parser.add_argument("--name", help="the model name clients send (default: the adapter's folder name, else --model)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-batch", type=int, default=8, help="most requests decoded together (default 8)")
    parser.add_argument("--template", help="chat template (default: the one the adapter was trained with, else the "
                        "tokenizer's own)")
    parser.add_argument("--system", help="default system prompt when a request has none")
    args = parser.parse_args(argv)
    if args.max_batch < 1:
        parser.error(f"--max-batch must be at least 1 (got {args.max_batch})")
    return args


def served_name(args: argparse.Namespace) -> str:
    if args.name:
        return args.name
    return Path(args.adapter).resolve().name if args.adapter else args.model


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    name = served_name(args)

    def load() -> ServedModel:
        from tuneforge.engine.generate import load_chat_model

        chat = load_chat_model(args.model, adapter=args.adapter, template=args.template, system=args.system)
        return ServedModel.start(name, chat, max_batch=args.max_batch)

    failed: list[BaseException] = []

    def on_load_error(exc: BaseException) -> None:
        failed.append(exc)
        server.should_exit = True

    app = create_app(name, load, on_load_error)
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="info"))
    server.run()
    if failed:
        hint = getattr(failed[0], "hint", None)
        print(f"error: could not load {args.model}: {failed[0]}" + (f"\nhint: {hint}" if hint else ""),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
