"""A dataset validation cut short by a server restart is failed with its reason at the next start, never re-run
on its own (a validation that crashed the server would crash it at every start); uploading the same files again
validates it again."""

from __future__ import annotations

import time

from tests.integration.service.conftest import QA


def _report(client, dataset_id: int, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        report = client.get("/datasets/validateDataset", params={"id": dataset_id}).json()
        if report["status"] != "validating":
            return report
        time.sleep(0.1)
    raise AssertionError("validation did not finish")


def test_a_validation_interrupted_by_a_restart_is_failed_and_not_rerun(make_client, settings, monkeypatch):
    import json

    from tuneforge.service.datasets import datasets as datasets_module
    from tuneforge.store import Database, DatasetVersion

    content = "\n".join(json.dumps({"instruction": q, "input": "", "output": a}) for q, a in QA * 3).encode()
    first = make_client(run_scheduler=False)
    created = first.post("/datasets/createDataset", data={"name": "cut-short"},
                         files=[("files", ("train.jsonl", content, "application/jsonl"))]).json()
    assert _report(first, created["id"])["status"] == "valid"
    database = Database(settings.database)
    with database.session() as session:  # as a server that stopped mid-validation leaves it
        for version in session.query(DatasetVersion):
            version.status, version.report = "validating", None
    database.dispose()

    runs: list[int] = []  # validations submitted: recorded when submitted, so no wait for a thread is needed
    original = datasets_module.DatasetService._validate_later
    monkeypatch.setattr(datasets_module.DatasetService, "_validate_later", lambda self, version_id: runs.append(
        version_id))
    restarted = make_client()  # a start-up: what a restarted server runs
    report = restarted.get("/datasets/validateDataset", params={"id": created["id"]}).json()
    assert report["status"] == "invalid", report
    assert "interrupted by a server restart" in report["report"]["error"], report
    assert runs == []  # failed with its reason, not validated again behind the user's back

    monkeypatch.setattr(datasets_module.DatasetService, "_validate_later", original)
    again = restarted.post("/datasets/createDatasetVersion", data={"id": created["id"]},
                           files=[("files", ("train.jsonl", content, "application/jsonl"))])
    assert again.status_code == 201 and again.json()["version"] == 1, again.text
    assert _report(restarted, created["id"])["status"] == "valid"
