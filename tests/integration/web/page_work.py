"""How much database work a console page does, counted rather than timed: a count is the same on a loaded machine
and a quiet one, and a page that queries once per row (N+1) shows up as a count that grows with the store. The
wall-clock bar (300 ms with 1,000 tasks) is measured by bench/console_bench.py."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, event

MAX_STATEMENTS = 12  # the busiest page issues 9 today; a per-row query would issue hundreds


def statements_per_page(client: TestClient, engine: Engine, paths: list[str]) -> dict[str, int]:
    """The SQL statements each page issues once warm (the first fetch fills caches), every fetch asserted 200."""
    issued = [0]

    def count(*_: Any) -> None:
        issued[0] += 1

    counts: dict[str, int] = {}
    event.listen(engine, "before_cursor_execute", count)
    try:
        for path in paths:
            warm = client.get(path)
            assert warm.status_code == 200, f"{path}: HTTP {warm.status_code} {warm.text[-500:]}"
            issued[0] = 0
            assert client.get(path).status_code == 200
            counts[path] = issued[0]
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return counts


def too_busy(counts: dict[str, int]) -> dict[str, int]:
    return {path: n for path, n in counts.items() if n > MAX_STATEMENTS}
