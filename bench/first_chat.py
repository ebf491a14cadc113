"""The first chat with a model nobody deployed: seconds from the first /v1/chat/completions naming the bundled
SmolLM2-135M-Instruct (served on demand: its serving process starts with the request) to the whole answer, and, after
unloading it, from a first streamed request to its first token and to its end. A second request to the loaded model is
timed for comparison.

Runs a real `tuneforge serve` on a fresh home (SQLite) with the converted model cached (the GGUF is converted once,
before timing, as `tuneforge demo` does). Prints one table and one JSON line.

    .venv/bin/python bench/first_chat.py [--max-tokens 32]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

MODEL = "smollm2-135m-instruct"  # the name ModelService.ensure_bundled registers it under
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: Path, port: int) -> subprocess.Popen[bytes]:
    from tuneforge.settings import Settings

    env = {**os.environ, "TUNEFORGE_HOME": str(home), "TUNEFORGE_PORT": str(port), "TUNEFORGE_CPU_SLOTS": "1",
           "TUNEFORGE_MODEL_CACHE": str(Settings().models_path), "TUNEFORGE_AUTH": "false"}
    env.pop("TUNEFORGE_DATABASE_URL", None)
    server = subprocess.Popen([sys.executable, "-m", "tuneforge.cli.main", "serve"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).json()["data"]:
                return server
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    server.kill()
    raise SystemExit("the server did not list the bundled model within 60 s")


def chat(client: httpx.Client, max_tokens: int) -> tuple[float, str]:
    started = time.perf_counter()
    response = client.post("/v1/chat/completions", json={"model": MODEL, "messages": QUESTION,
                                                          "max_tokens": max_tokens, "temperature": 0})
    assert response.status_code == 200, response.text
    return time.perf_counter() - started, response.json()["choices"][0]["message"]["content"]


def streamed_chat(client: httpx.Client, max_tokens: int) -> tuple[float, float]:
    """(seconds to the first content token, seconds to the end of the stream)."""
    body = {"model": MODEL, "messages": QUESTION, "max_tokens": max_tokens, "temperature": 0, "stream": True}
    started = time.perf_counter()
    first: float | None = None
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if first is None and line.startswith("data: {"):
                choices = json.loads(line[len("data: "):]).get("choices") or [{}]
                if choices[0].get("delta", {}).get("content"):
                    first = time.perf_counter() - started
    assert first is not None, "the stream carried no token"
    return first, time.perf_counter() - started


def unload(client: httpx.Client) -> None:
    """Deletes the on-demand deployment, so the next request loads the model again."""
    for deployment in client.get("/deployments/getDeploymentList").json()["items"]:
        if deployment["onDemand"]:
            client.delete("/deployments/deleteDeployment", params={"id": deployment["id"]}).raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    from tuneforge.engine.bundled import bundled_model_dir

    bundled_model_dir()  # converted once, before timing
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        server = start_server(Path(tmp), port)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600, trust_env=False) as client:
                first_answer_s, answer = chat(client, args.max_tokens)
                loaded_answer_s, _ = chat(client, args.max_tokens)
                unload(client)
                first_token_s, first_stream_s = streamed_chat(client, args.max_tokens)
                unload(client)
        finally:
            server.terminate()
            server.wait()
    figures = {"first_chat_to_answer_s": first_answer_s, "first_chat_to_first_token_s": first_token_s,
               "first_chat_stream_end_s": first_stream_s, "loaded_chat_to_answer_s": loaded_answer_s}
    print(f"{'model':<24} " + " ".join(f"{key:>28}" for key in figures))
    print(f"{MODEL:<24} " + " ".join(f"{value:>28.2f}" for value in figures.values()))
    print(json.dumps({"bench": "first_chat", "model": MODEL, "max_tokens": args.max_tokens, "answer": answer,
                      "cpu_count": os.cpu_count(), **{k: round(v, 3) for k, v in figures.items()}}))


if __name__ == "__main__":
    main()
