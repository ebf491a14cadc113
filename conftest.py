"""Pytest root: puts the repository root on sys.path (tests import tests.fixtures) and shares session fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures.databases"]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama and its tokenizer, saved once per test session."""
    from tests.fixtures.tiny import build_tiny_llama

    path = tmp_path_factory.mktemp("tiny-llama")
    build_tiny_llama(path)
    return path
