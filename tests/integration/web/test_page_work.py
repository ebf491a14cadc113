"""Every console page's database work stays bounded as the store grows: with 1,000 tasks each page issues at most a
dozen SQL statements, and exactly as many as with 3 tasks, so no page queries once per task or per row it shows.
(Counted, not timed: bench/console_bench.py measures the 300 ms bar.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.fixtures.auth import as_local_admin
from tests.integration.web.page_work import statements_per_page, too_busy
from tests.integration.web.task_rows import console_pages, seed_tasks
from tuneforge.service.platform import Platform
from tuneforge.settings import Settings
from tuneforge.web.app import create_console_app


def page_statements(home: Path, tasks: int) -> dict[str, int]:
    """Each page's statement count on a fresh store of `tasks` seeded tasks, keyed by page with the ids of that
    store's first and newest task written as FIRST / NEWEST so two stores' pages compare."""
    settings = Settings(home=home, cpu_slots=1)
    platform = Platform(settings)
    try:
        ids = seed_tasks(platform.db, settings.home, tasks)
        # No scheduler: the seeded "running" tasks have no worker, and must stay as they are.
        with TestClient(create_console_app(settings, platform, run_scheduler=False)) as client:
            as_local_admin(client)
            counts = statements_per_page(client, platform.db.engine, console_pages(ids))
    finally:
        platform.close()
    return {_generic(path, ids): n for path, n in counts.items()}


def _generic(path: str, ids: list[int]) -> str:
    return path.replace(f"={ids[-1]}", "=NEWEST").replace(f"/{ids[-1]}", "/NEWEST")


@pytest.fixture(scope="module")
def counts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, int], dict[str, int]]]:
    yield (page_statements(tmp_path_factory.mktemp("small") / "home", 3),
           page_statements(tmp_path_factory.mktemp("large") / "home", 1000))


def test_every_page_issues_a_bounded_number_of_statements_with_1000_tasks(counts):
    _, large = counts
    print(f"\n{'page':60} {'statements':>10}")  # pytest -s shows the figures
    for path, n in large.items():
        print(f"{path:60} {n:10d}")
    assert too_busy(large) == {}


def test_no_page_queries_once_per_task(counts):
    small, large = counts
    assert large.keys() == small.keys()
    assert large == small, {path: (small[path], n) for path, n in large.items() if small[path] != n}
