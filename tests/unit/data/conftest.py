"""The tiny tokenizer and its ChatML template, built once per module for the data tests that encode chats."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.tiny import build_tokenizer
from tuneforge.data.templates import get_template


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return build_tokenizer()


@pytest.fixture(scope="module")
def chatml(tokenizer: Any) -> Any:
    return get_template("chatml", tokenizer)
