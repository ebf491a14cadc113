"""`tuneforge users …` against a real server: the local CLI works with no key set (it reads the local admin's key
file); an admin adds a user whose key is printed once; that user sees only their own things; a revoked key is
refused; `serve` on every interface with auth off is refused."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.fixtures.live_server import live_server
from tuneforge.cli.main import app
from tuneforge.settings import Settings

KEY = re.compile(r"tf-[A-Za-z0-9_-]{40,}")


@pytest.fixture()
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    settings = Settings(home=tmp_path / "home", cpu_slots=1)
    with live_server(settings, run_scheduler=False) as (url, _):
        # a local user: no TUNEFORGE_API_KEY, the server's home is the CLI's home
        monkeypatch.delenv("TUNEFORGE_API_KEY")
        monkeypatch.setenv("TUNEFORGE_HOME", str(settings.home))
        yield url


def cli(server: str, *args: str, code: int = 0, key: str | None = None) -> str:
    env = {"TUNEFORGE_API_KEY": key} if key else None
    result = CliRunner().invoke(app, ["users", "--server", server, *args], env=env)
    assert result.exit_code == code, result.output
    return " ".join(result.output.split())


def test_the_local_cli_needs_no_key_and_a_new_user_sees_only_their_own(server: str) -> None:
    assert cli(server, "me").startswith("admin (admin")
    created = cli(server, "create", "bob")
    assert "created user 2 bob (member)" in created
    match = KEY.search(created)
    assert match, created
    bob = match.group(0)
    assert cli(server, "me", key=bob).startswith("bob (member")
    listed = cli(server, "list", key=bob)
    assert "bob" in listed and "admin" not in listed  # a member sees themselves only
    refused = cli(server, "create", "mallory", key=bob, code=2)
    assert "only an admin" in refused
    keys = cli(server, "keys", "list", key=bob)
    assert bob[:10] in keys and bob not in keys  # the prefix, never the key
    key_id = re.search(r"│\s*(\d+)\s*│\s*2\s*│", CliRunner().invoke(
        app, ["users", "--server", server, "keys", "list"], env={"TUNEFORGE_API_KEY": bob}).output)
    assert key_id, keys
    cli(server, "keys", "revoke", key_id.group(1))
    assert "not valid" in cli(server, "me", key=bob, code=2)


def test_serving_on_every_interface_without_auth_is_refused(tmp_path: Path) -> None:
    env = {**os.environ, "TUNEFORGE_HOME": str(tmp_path / "home"), "TUNEFORGE_AUTH": "false"}
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--port", "1"], env=env)
    assert result.exit_code == 2
    assert "TUNEFORGE_AUTH=false" in " ".join(result.output.split())
