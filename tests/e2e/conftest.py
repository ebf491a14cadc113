"""Browser tests: a real console server, headless Chromium driven by Playwright, and screenshots as test artifacts.

Chromium is Debian's package (scripts/browser.sh installs it; TUNEFORGE_CHROMIUM names it), launched by path, so
nothing is downloaded. Without it the tests skip, unless TUNEFORGE_REQUIRE_BROWSER=1 (scripts/test.sh sets it),
where a missing browser is a failure: CI must not pass by skipping them.

Screenshots go to test-artifacts/screenshots/<test>/<name>.png: `shoot("name")` takes one, and a failing test gets
`failure.png` automatically.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.fixtures.auth import local_key
from tests.fixtures.live_server import live_server
from tests.integration.service.conftest import QA
from tuneforge.settings import Settings

CHROMIUM_VARIABLE = "TUNEFORGE_CHROMIUM"
REQUIRE_VARIABLE = "TUNEFORGE_REQUIRE_BROWSER"
DEFAULT_CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
VIEWPORT = {"width": 1400, "height": 900}
# Long enough for a loaded shared machine (a wait ends as soon as its element shows), short enough that a missing
# element fails within a minute.
ACTION_TIMEOUT_MS = 60_000


@dataclass
class ConsoleServer:
    """A running console: its URL, the platform behind it, and what lies under its allowed roots."""

    url: str
    platform: Any
    settings: Settings
    model_dir: Path  # the tiny random Llama (a valid baseModel)
    dataset_dir: Path  # data/qa/ with train.jsonl and valid.jsonl (a valid datasetPath)


def _missing_browser(reason: str) -> NoReturn:
    if os.environ.get(REQUIRE_VARIABLE) == "1":
        pytest.fail(f"{REQUIRE_VARIABLE}=1 but {reason}; run `bash scripts/browser.sh`", pytrace=False)
    pytest.skip(f"{reason}: run `bash scripts/browser.sh` and set {CHROMIUM_VARIABLE}")


def chromium_path() -> str:
    """The Chromium executable to launch: TUNEFORGE_CHROMIUM, else Debian's usual paths."""
    named = os.environ.get(CHROMIUM_VARIABLE, "").strip()
    candidates = (named,) if named else DEFAULT_CHROMIUM
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    _missing_browser(f"no Chromium at {', '.join(candidates)}")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the whole session (each test gets its own context, so nothing leaks)."""
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing_browser("the playwright package is not installed (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        # --no-sandbox: Chromium refuses to start sandboxed as root (CI and containers run as root).
        chromium = playwright.chromium.launch(executable_path=executable, headless=True,
                                              args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield chromium
        chromium.close()


def write_qa_dataset(folder: Path) -> Path:
    """Seed 003's layout: train.jsonl and valid.jsonl of short question/answer pairs in Alpaca format."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"instruction": q, "input": "", "output": a} for q, a in QA * 6]
    (folder / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    (folder / "valid.jsonl").write_text("\n".join(json.dumps(r) for r in rows[:4]) + "\n", encoding="utf-8")
    return folder


@pytest.fixture()
def console_server(tmp_path: Path, tiny_model_dir: Path) -> Iterator[ConsoleServer]:
    """The console and API on a free port, with a home of its own, the tiny model and a small dataset allowed."""
    dataset_dir = write_qa_dataset(tmp_path / "data" / "qa")
    settings = Settings(home=tmp_path / "home", allowed_roots=[tmp_path, tiny_model_dir.parent], cpu_slots=1,
                        poll_interval_s=0.2, stop_grace_s=30)
    with live_server(settings) as (url, platform):
        yield ConsoleServer(url=url, platform=platform, settings=settings, model_dir=tiny_model_dir,
                            dataset_dir=dataset_dir)


@pytest.fixture()
def locale() -> str:
    """The browser's language; override with @pytest.mark.parametrize("locale", ["zh-CN"])."""
    return "en-US"


@pytest.fixture()
def page_errors() -> list[str]:
    """JavaScript errors of the test's page: uncaught exceptions and console.error messages."""
    return []


@pytest.fixture()
def page(browser: Any, console_server: ConsoleServer, locale: str, page_errors: list[str],
         request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context (no cookies, no storage) at 1400×900 whose relative URLs go to the console."""
    shutil.rmtree(_artifact_dir(request.node), ignore_errors=True)  # this run's pictures only, never stale ones
    context = browser.new_context(base_url=console_server.url, viewport=VIEWPORT, locale=locale)
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    tab = context.new_page()
    # signed in the way `tuneforge serve` tells a local user to: its link with the local admin's key
    tab.goto(f"/console/login?key={local_key(console_server.settings)}")
    tab.on("pageerror", lambda error: page_errors.append(f"uncaught: {error}"))
    tab.on("console", lambda message: page_errors.append(f"console.error: {message.text} ({message.location})")
           if message.type == "error" else None)
    yield tab
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        _screenshot(tab, _artifact_dir(request.node) / "failure.png")
    context.close()


@pytest.fixture()
def shoot(page: Any, request: pytest.FixtureRequest) -> Callable[[str], Path]:
    """shoot("name") saves the whole page to test-artifacts/screenshots/<test>/<name>.png and returns the path."""
    folder = _artifact_dir(request.node)

    def take(name: str) -> Path:
        return _screenshot(page, folder / f"{_safe(name)}.png")

    return take


def _screenshot(page: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path


def _artifact_dir(node: pytest.Item) -> Path:
    return ARTIFACTS / _safe(node.name)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "unnamed"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keeps each phase's report on the test item, so the page fixture knows at teardown whether the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
