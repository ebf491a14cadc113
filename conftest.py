"""Pytest root: puts the repository root on sys.path (tests import tests.fixtures) and shares session fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures.databases", "tests.fixtures.ray_cluster"]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama and its tokenizer, saved once per test session."""
    from tests.fixtures.tiny import build_tiny_llama

    path = tmp_path_factory.mktemp("tiny-llama")
    build_tiny_llama(path)
    return path


@pytest.fixture(autouse=True, scope="session")
def _test_client_host() -> None:
    """FastAPI's TestClient sends `Host: testserver`; the server answers only to the names it is told (DNS
    rebinding), so the test session names this one too."""
    import os

    os.environ["TUNEFORGE_ALLOWED_HOSTS"] = '["testserver"]'
