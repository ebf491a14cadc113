"""Console page render times with many tasks in the store (the bar: every page < 300 ms server time).

Seeds N task rows straight into a fresh SQLite store (tests/integration/web/task_rows.py: every 10th running, each
with a config, a command and checkpoints, the first five with a 200-step loss curve), then fetches every console
page through FastAPI's TestClient — routing, service, database and templates, no network — and reports the first
(cold: templates compiled, schema walked) and the steady-state p50 / p95 / max. Prints a table and one JSON line.

    .venv/bin/python bench/console_bench.py [--tasks 1000] [--runs 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the task-row seeding lives with the tests

from tests.fixtures.auth import as_local_admin
from tests.integration.web.task_rows import console_pages, seed_tasks

BAR_MS = 300.0


def measure(tasks: int, runs: int) -> dict[str, dict[str, float]]:
    from fastapi.testclient import TestClient

    from tuneforge.service.platform import Platform
    from tuneforge.settings import Settings
    from tuneforge.web.app import create_console_app

    with tempfile.TemporaryDirectory() as tmp:
        # TestClient sends `Host: testserver`; the server answers only to the names it is told (DNS rebinding).
        settings = Settings(home=Path(tmp) / "home", cpu_slots=1, allowed_hosts=["testserver"])
        platform = Platform(settings)
        ids = seed_tasks(platform.db, settings.home, tasks)
        results: dict[str, dict[str, float]] = {}
        try:
            with TestClient(create_console_app(settings, platform, run_scheduler=False)) as client:
                as_local_admin(client)  # as a signed-in user: without a key every page is the sign-in page
                for path in console_pages(ids):
                    started = time.perf_counter()
                    first = client.get(path)
                    cold = (time.perf_counter() - started) * 1000
                    if first.status_code != 200:
                        raise SystemExit(f"{path}: HTTP {first.status_code}")
                    samples = []
                    for _ in range(runs):
                        started = time.perf_counter()
                        client.get(path)
                        samples.append((time.perf_counter() - started) * 1000)
                    samples.sort()
                    results[path] = {"cold_ms": cold, "p50_ms": statistics.median(samples),
                                     "p95_ms": samples[max(0, int(len(samples) * 0.95) - 1)], "max_ms": samples[-1],
                                     "kb": len(first.content) / 1024}
        finally:
            platform.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    results = measure(args.tasks, args.runs)
    print(f"console pages, {args.tasks} tasks in the store, {args.runs} runs each (TestClient, SQLite)")
    print(f"{'page':52} {'cold ms':>8} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'KiB':>7}")
    for path, r in results.items():
        print(f"{path:52} {r['cold_ms']:8.1f} {r['p50_ms']:8.1f} {r['p95_ms']:8.1f} {r['max_ms']:8.1f} {r['kb']:7.1f}")
    worst = max(results.items(), key=lambda item: item[1]["p95_ms"])
    summary = {"bench": "console", "tasks": args.tasks, "runs": args.runs, "pages": len(results),
               "worst_page": worst[0], "worst_p95_ms": round(worst[1]["p95_ms"], 1),
               "worst_cold_ms": round(max(r["cold_ms"] for r in results.values()), 1),
               "all_under_bar": all(r["p95_ms"] < BAR_MS for r in results.values()), "bar_ms": BAR_MS,
               "p50_ms": {path: round(r["p50_ms"], 1) for path, r in results.items()}}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
