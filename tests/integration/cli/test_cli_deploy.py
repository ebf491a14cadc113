"""`tuneforge deploy delete` and `tuneforge models delete` answer with a sentence, as the other commands do, not
the server's JSON. The serving process is a stand-in that only sleeps: this is about what the CLI prints."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.fixtures.auth import api_get, api_post, env_headers
from tests.fixtures.live_server import live_server
from tuneforge.cli.main import app
from tuneforge.settings import Settings


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[str]:
    stand_in = tmp_path / "serving-stand-in"
    stand_in.write_text("#!/bin/sh\nexec sleep 300\n", encoding="utf-8")
    stand_in.chmod(0o755)
    with live_server(Settings(home=tmp_path / "home", cpu_slots=1), run_scheduler=False) as (url, platform):
        platform.deployments.python = str(stand_in)  # launched as `python -m tuneforge.serving …`
        yield url
        for deployment in api_get(f"{url}/deployments/getDeploymentList").json()["items"]:
            httpx.delete(f"{url}/deployments/deleteDeployment", params={"id": deployment["id"]}, headers=env_headers())


def cli(server: str, *args: str) -> str:
    result = CliRunner().invoke(app, [args[0], "--server", server, *args[1:]])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())  # one line, whatever the terminal's width


def test_deploy_delete_and_models_delete_print_a_sentence(server):
    model = api_post(f"{server}/models/registerModel", json={"name": "tiny-base", "source": "bundled"}).json()
    deployment = api_post(f"{server}/deployments/createDeployment",
                            json={"name": "tiny-live", "modelId": model["id"]}).json()

    said = cli(server, "deploy", "delete", str(deployment["id"]))
    assert said == (f"deleted deployment {deployment['id']} tiny-live: its serving process is stopped and /v1 no "
                    "longer routes 'tiny-live'")
    assert api_get(f"{server}/deployments/getDeploymentList").json()["total"] == 0

    said = cli(server, "models", "delete", str(model["id"]))
    assert said == f"deleted model {model['id']} tiny-base from the registry"
    assert api_get(f"{server}/models/getModel", params={"id": model["id"]}).status_code == 404
