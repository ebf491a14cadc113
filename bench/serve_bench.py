"""Serving figures for the bundled SmolLM2-135M-Instruct on CPU: first-token latency and single-stream tokens/s
through `python -m tuneforge.serving`, against a bare `model.generate` loop on the same prompts; then 8 concurrent
streams (all must complete with no error) and their aggregate tokens/s. Greedy decoding throughout.

Prints one table and one JSON line. Bar (issue 6): first token p50 < 1 s.

    .venv/bin/python bench/serve_bench.py [--max-tokens 64] [--streams 8]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

NAME = "smollm2-135m"
PROMPTS = [
    "Who are you?",
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Explain in two sentences why the sky is blue.",
    "Give me three tips for learning a new language.",
    "What is 12 times 13?",
    "Translate 'good morning' into Spanish and German.",
    "Describe a cat to someone who has never seen one.",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bare_generate(max_tokens: int) -> dict[str, float]:
    """transformers' generate, one prompt at a time, in this process (no server, no HTTP)."""
    import torch

    from tuneforge.engine.generate import load_chat_model

    chat = load_chat_model("bundled")
    first, rates = [], []
    with torch.inference_mode():
        for prompt in [PROMPTS[0], *PROMPTS]:  # the first one warms up
            ids = torch.tensor([chat.prompt_ids([{"role": "user", "content": prompt}])])
            kwargs = {"attention_mask": torch.ones_like(ids), "do_sample": False, "temperature": None,
                      "top_p": None, "top_k": None, "eos_token_id": chat.stop_ids,
                      "pad_token_id": chat.tokenizer.pad_token_id}
            started = time.perf_counter()
            chat.model.generate(ids, max_new_tokens=1, **kwargs)
            first.append(time.perf_counter() - started)
            started = time.perf_counter()
            out = chat.model.generate(ids, max_new_tokens=max_tokens, **kwargs)
            rates.append((out.shape[1] - ids.shape[1]) / (time.perf_counter() - started))
    return {"first_token_p50_s": statistics.median(first[1:]), "tokens_per_s": statistics.median(rates[1:])}


def start_server(port: int) -> subprocess.Popen:
    server = subprocess.Popen([sys.executable, "-m", "tuneforge.serving", "--model", "bundled", "--name", NAME,
                               "--port", str(port), "--max-batch", "8"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300  # the first run converts the GGUF (~30 s)
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if server.poll() is not None:
            raise SystemExit(f"the server exited with code {server.returncode}")
        time.sleep(0.1)
    server.kill()
    raise SystemExit("the server did not become healthy within 300 s")


def stream_once(url: str, prompt: str, max_tokens: int) -> dict[str, Any]:
    """One streamed request: seconds to the first content, total seconds, completion tokens."""
    body = {"model": NAME, "messages": [{"role": "user", "content": prompt}], "temperature": 0,
            "max_tokens": max_tokens, "stream": True, "stream_options": {"include_usage": True}}
    started = time.perf_counter()
    first, tokens, text = None, 0, []
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=300) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(chunk["error"]["message"])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            for choice in chunk["choices"]:
                if choice["delta"].get("content"):
                    first = first or time.perf_counter() - started
                    text.append(choice["delta"]["content"])
    return {"first_s": first or float("nan"), "total_s": time.perf_counter() - started, "tokens": tokens,
            "text": "".join(text)}


def served(url: str, max_tokens: int, streams: int) -> dict[str, Any]:
    stream_once(url, PROMPTS[0], max_tokens)  # warm-up
    single = [stream_once(url, p, max_tokens) for p in PROMPTS]
    batch = (PROMPTS * ((streams + len(PROMPTS) - 1) // len(PROMPTS)))[:streams]
    started = time.perf_counter()
    with ThreadPoolExecutor(streams) as pool:
        futures = [pool.submit(stream_once, url, p, max_tokens) for p in batch]
    results, errors = [], []
    for future in futures:
        try:
            results.append(future.result())
        except Exception as exc:
            errors.append(str(exc))
    wall = time.perf_counter() - started
    same = sum(r["text"] == single[i % len(PROMPTS)]["text"] for i, r in enumerate(results))
    return {
        "first_token_p50_s": statistics.median(r["first_s"] for r in single),
        "tokens_per_s": statistics.median(r["tokens"] / r["total_s"] for r in single),
        "concurrent_streams": streams, "concurrent_completed": len(results), "concurrent_errors": len(errors),
        "concurrent_same_text_as_single": same,
        "concurrent_first_token_p50_s": statistics.median(r["first_s"] for r in results) if results else None,
        "concurrent_aggregate_tokens_per_s": sum(r["tokens"] for r in results) / wall,
        "largest_batch": httpx.get(f"{url}/health").json()["largest_batch"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--streams", type=int, default=8)
    args = parser.parse_args()
    bare = bare_generate(args.max_tokens)  # before the server starts, so the two never share the CPU
    port = free_port()
    server = start_server(port)
    try:
        figures = served(f"http://127.0.0.1:{port}", args.max_tokens, args.streams)
    finally:
        server.terminate()
        server.wait()
    rows = [
        ("first token p50 (s), single stream", f"{figures['first_token_p50_s']:.3f}",
         f"{bare['first_token_p50_s']:.3f}"),
        ("tokens/s, single stream", f"{figures['tokens_per_s']:.1f}", f"{bare['tokens_per_s']:.1f}"),
        (f"{args.streams} concurrent: completed / errors",
         f"{figures['concurrent_completed']} / {figures['concurrent_errors']}", "-"),
        (f"{args.streams} concurrent: same text as single", f"{figures['concurrent_same_text_as_single']}", "-"),
        (f"{args.streams} concurrent: first token p50 (s)", f"{figures['concurrent_first_token_p50_s']:.3f}", "-"),
        (f"{args.streams} concurrent: aggregate tokens/s", f"{figures['concurrent_aggregate_tokens_per_s']:.1f}", "-"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'SmolLM2-135M, CPU, greedy, ' + str(args.max_tokens) + ' tokens':<{width}}  {'server':>10}  "
          f"{'bare generate':>13}")
    for label, ours, theirs in rows:
        print(f"{label:<{width}}  {ours:>10}  {theirs:>13}")
    bar = figures["first_token_p50_s"] < 1.0 and figures["concurrent_errors"] == 0
    print(json.dumps({"bench": "serve", "model": NAME, "max_tokens": args.max_tokens,
                      "server": figures, "bare_generate": bare, "bar_met": bar}))


if __name__ == "__main__":
    main()
