"""Task API figures: cold start, getTaskList latency with 10,000 tasks, createTask → first optimizer step.

Each part runs a real `tuneforge serve` process on a fresh home (SQLite) and talks to it over HTTP.
Prints one table and one JSON line. Bars (issue 4): cold start < 1 s; getTaskList p95 < 50 ms with 10,000 tasks;
createTask → first optimizer step < 10 s with the model cached.

    .venv/bin/python bench/api_bench.py [--tasks 10000] [--requests 300]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: Path, port: int) -> tuple[subprocess.Popen, float]:
    """Seconds from spawning the process to the first successful /health."""
    from tuneforge.settings import Settings

    env = {**os.environ, "TUNEFORGE_HOME": str(home), "TUNEFORGE_PORT": str(port), "TUNEFORGE_CPU_SLOTS": "1",
           "TUNEFORGE_POLL_INTERVAL_S": "0.2", "TUNEFORGE_MODEL_CACHE": str(Settings().models_path)}
    env.pop("TUNEFORGE_DATABASE_URL", None)
    started = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "tuneforge.cli.main", "serve"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with httpx.Client() as client:
        while time.perf_counter() - started < 60:
            try:
                if client.get(f"http://127.0.0.1:{port}/health", timeout=0.5).status_code == 200:
                    return server, time.perf_counter() - started
            except httpx.HTTPError:
                time.sleep(0.005)
    server.kill()
    raise SystemExit("the server did not start within 60 s")


def cold_start(runs: int) -> dict[str, float]:
    fresh, warm = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            for bucket in (fresh, warm):  # a new database (migrations run), then a restart on it
                server, seconds = start_server(Path(tmp), free_port())
                bucket.append(seconds)
                server.terminate()
                server.wait()
    return {"cold_start_new_db_s": statistics.median(fresh), "cold_start_existing_db_s": statistics.median(warm)}


def fill_store(home: Path, count: int) -> None:
    from sqlalchemy import insert

    from tuneforge.settings import Settings
    from tuneforge.store import Database, Task

    db = Database(Settings(home=home).database)
    db.upgrade()
    statuses = ["completed"] * 7 + ["failed", "stopped", "completed"]  # none pending: they would start
    now = time.time()
    rows = [{"name": f"task-{i:05d}", "description": f"bench task {i}", "owner_id": i % 20,
             "status": statuses[i % len(statuses)], "progress": 100.0, "base_model": "bundled",
             "dataset": "identity", "output_path": f"/tmp/out/{i}", "stage": "sft", "finetuning_type": "lora",
             "training_args": {"learning_rate": 1e-4, "lora_rank": 8, "num_train_epochs": 3},
             "auto_values": [], "gpu_config": {}, "devices": [], "device_count": 1, "log_path": "",
             "metrics": {"train_loss": 1.0}, "created_at": now - i,
             "run_dir": str(home / "runs" / f"task-{i}"), "step": 100, "total_steps": 100,
             "tokens_trained": 123456, "last_seq": 0, "resume_requested": False} for i in range(count)]
    with db.engine.begin() as connection:
        for start in range(0, count, 2000):
            connection.execute(insert(Task), rows[start:start + 2000])
    db.dispose()


def list_latency(count: int, requests: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        fill_store(home, count)
        port = free_port()
        server, _ = start_server(home, port)
        try:
            timings: dict[str, list[float]] = {"plain": [], "filtered": []}
            queries = {"plain": {}, "filtered": {"status": "completed,failed", "name": "task-0", "ownerId": 3}}
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
                for kind, params in queries.items():
                    for i in range(requests + 20):
                        started = time.perf_counter()
                        response = client.get("/finetuning/getTaskList", params={**params, "page": 1 + i % 50})
                        elapsed = time.perf_counter() - started
                        assert response.status_code == 200 and response.json()["total"] > 0, response.text
                        if i >= 20:  # warm-up excluded
                            timings[kind].append(elapsed * 1000)
        finally:
            server.terminate()
            server.wait()
    result = {}
    for kind, values in timings.items():
        values.sort()
        result[f"list_{kind}_p50_ms"] = values[len(values) // 2]
        result[f"list_{kind}_p95_ms"] = values[int(len(values) * 0.95) - 1]
    return result


def first_step() -> dict[str, float]:
    from tuneforge.engine.bundled import bundled_model_dir

    bundled_model_dir()  # "with the model cached": the GGUF is converted once, before timing
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        port = free_port()
        server, _ = start_server(home, port)
        try:
            body = {"name": "first-step", "baseModel": "bundled", "datasetPath": "identity",
                    "trainingArgs": {"template": "smollm2", "cutoff_len": 256, "per_device_train_batch_size": 4,
                                     "max_steps": 3, "logging_steps": 1, "save_strategy": "no",
                                     "report_to": "none"}}
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                started = time.perf_counter()
                created = client.post("/finetuning/createTask", json=body)
                assert created.status_code == 201, created.text
                accepted = time.perf_counter() - started
                task_id = created.json()["id"]
                while True:
                    task = client.get("/finetuning/getTask", params={"id": task_id}).json()
                    if task["step"] >= 1:
                        break
                    assert task["status"] in ("pending", "running"), task["errorMessage"]
                    assert time.perf_counter() - started < 120, "no first step within 120 s"
                    time.sleep(0.05)
                return {"create_accepted_s": accepted, "create_to_first_step_s": time.perf_counter() - started}
        finally:
            server.terminate()
            server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--cold-runs", type=int, default=3)
    args = parser.parse_args()
    figures = {**cold_start(args.cold_runs), **list_latency(args.tasks, args.requests), **first_step()}
    bars = {"cold_start_existing_db_s": 1.0, "cold_start_new_db_s": 1.0, "list_plain_p95_ms": 50,
            "list_filtered_p95_ms": 50, "create_to_first_step_s": 10}
    print(f"{'figure':<28} {'value':>10} {'bar':>8}  ok")
    for key, value in figures.items():
        bar = bars.get(key)
        ok = "" if bar is None else ("yes" if value < bar else "NO")
        print(f"{key:<28} {value:>10.3f} {bar if bar is not None else '':>8}  {ok}")
    print(json.dumps({"bench": "api", "tasks": args.tasks, **{k: round(v, 4) for k, v in figures.items()}}))


if __name__ == "__main__":
    main()
