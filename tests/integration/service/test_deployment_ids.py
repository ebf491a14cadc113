"""The deployment operations that take an id (stop, start, delete) accept `?id=N` and a JSON body {"id": N}, as the
task operations do. The serving process is a stand-in that only sleeps: these tests are about the API, not serving."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.fixtures.auth import as_local_admin
from tuneforge.api.app import create_app
from tuneforge.settings import Settings


@pytest.fixture()
def client(tmp_path: Path) -> Iterator[TestClient]:
    """The API without the scheduler or the deployment watcher (nothing health-checks the stand-in)."""
    stand_in = tmp_path / "serving-stand-in"
    stand_in.write_text("#!/bin/sh\nexec sleep 300\n", encoding="utf-8")
    stand_in.chmod(0o755)
    with TestClient(create_app(Settings(home=tmp_path / "home", cpu_slots=1), run_scheduler=False)) as light:
        as_local_admin(light)
        light.app.state.platform.deployments.python = str(stand_in)  # launched as `python -m tuneforge.serving …`
        yield light
        for deployment in light.get("/deployments/getDeploymentList").json()["items"]:
            light.delete("/deployments/deleteDeployment", params={"id": deployment["id"]})


def deploy(client: TestClient, name: str) -> int:
    model = client.post("/models/registerModel", json={"name": f"{name}-model", "source": "bundled"})
    assert model.status_code == 201, model.text
    created = client.post("/deployments/createDeployment", json={"name": name, "modelId": model.json()["id"]})
    assert created.status_code == 201, created.text
    return created.json()["id"]


def test_stop_and_start_take_the_id_in_the_query_or_the_body(client):
    deployment_id = deploy(client, "either-way")
    by_query = client.post("/deployments/stopDeployment", params={"id": deployment_id})
    assert by_query.status_code == 200, by_query.text
    assert by_query.json()["status"] == "stopped"
    by_body = client.post("/deployments/startDeployment", json={"id": deployment_id})
    assert by_body.status_code == 200 and by_body.json()["status"] == "starting"
    assert client.post("/deployments/stopDeployment", json={"id": deployment_id}).json()["status"] == "stopped"
    started = client.post("/deployments/startDeployment", params={"id": deployment_id})
    assert started.status_code == 200 and started.json()["status"] == "starting"


@pytest.mark.parametrize("form", ["query", "body"])
def test_delete_takes_the_id_in_the_query_or_the_body(client, form):
    deployment_id = deploy(client, f"gone-by-{form}")
    where = {"params": {"id": deployment_id}} if form == "query" else {"json": {"id": deployment_id}}
    deleted = client.request("DELETE", "/deployments/deleteDeployment", **where)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"id": deployment_id, "name": f"gone-by-{form}", "deleted": True}
    assert client.get("/deployments/getDeployment", params={"id": deployment_id}).status_code == 404


@pytest.mark.parametrize(("method", "path"), [("POST", "/deployments/stopDeployment"),
                                              ("POST", "/deployments/startDeployment"),
                                              ("DELETE", "/deployments/deleteDeployment")])
def test_no_id_at_all_is_a_422_at_the_id_field(client, method, path):
    answer = client.request(method, path)
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert [d["field"] for d in error["details"]] == ["id"] and "?id=N" in error["message"]
    assert client.request(method, path, params={"id": 999}).status_code == 404
