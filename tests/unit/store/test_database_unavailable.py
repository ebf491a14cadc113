"""A database that cannot be opened is one sentence naming the file and what to do, before the server starts."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tuneforge.store.database import Database, DatabaseUnavailable


def test_a_damaged_sqlite_file_names_the_file_and_what_to_do(tmp_path):
    path = tmp_path / "tuneforge.db"
    path.write_bytes(b"this is not a database, it was overwritten" * 100)
    with pytest.raises(DatabaseUnavailable) as caught:
        Database(f"sqlite:///{path}").upgrade()
    message = str(caught.value)
    assert str(path) in message and "move it aside" in message and "SELECT" not in message


def test_serve_refuses_to_start_on_a_damaged_database(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "tuneforge.db").write_bytes(b"garbage" * 1000)
    env = {**os.environ, "TUNEFORGE_HOME": str(home), "TUNEFORGE_PORT": "0"}
    env.pop("TUNEFORGE_DATABASE_URL", None)
    result = subprocess.run([sys.executable, "-m", "tuneforge.cli.main", "serve"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1
    assert "tuneforge.db cannot be used" in result.stdout and "Traceback" not in result.stdout + result.stderr
