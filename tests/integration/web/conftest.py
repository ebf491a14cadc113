"""Console pages through FastAPI's TestClient on a fresh platform (tiny model allowed; no scheduler, so tasks keep
the state a test gives them)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.fixtures.auth import as_local_admin
from tuneforge.service.platform import Platform
from tuneforge.settings import Settings
from tuneforge.web.app import create_console_app


@pytest.fixture()
def platform(tmp_path: Path, tiny_model_dir: Path) -> Iterator[Platform]:
    settings = Settings(home=tmp_path / "home", allowed_roots=[tmp_path, tiny_model_dir.parent], cpu_slots=1)
    platform = Platform(settings)
    yield platform
    platform.close()


@pytest.fixture()
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_console_app(platform.settings, platform, run_scheduler=False)) as client:
        yield as_local_admin(client, platform.settings)
