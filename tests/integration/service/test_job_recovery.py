"""One recovery path after a server restart, for every kind of job: a job whose process outlived the server is
re-attached and followed to its end; one whose process ended meanwhile without a result is failed, and says why.
Deployments are services: a dead one is restarted (the crash policy), a live one is left as it is. Validations and
imports ran inside the server: they are failed as interrupted, never re-run behind the user's back.

The restart: the first `standin_server` block ends (the server stops; its processes run on), a second one starts
on the same home and database. Every process is the stand-in (tests.fixtures.standins), told by a file when to
finish or crash."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from sqlalchemy import select

from tests.fixtures.polling import until
from tests.fixtures.standins import has_progress
from tests.integration.service.conftest import QA, task_body
from tuneforge.service.runtime.jobs import INTERRUPTED_BY_RESTART, recorded_process
from tuneforge.service.runtime.processes import is_same_process, signal_group
from tuneforge.store import DatasetVersion, Evaluation, RegisteredModel

TIMEOUT = 300  # only guards against a hang: every wait polls


def _crash_while_no_server_runs(folder: Path, pid: int) -> None:
    (folder / "crash").touch()
    until(lambda: not is_same_process(pid, None), "the process crashed", timeout=TIMEOUT)


def _recorded_pid(folder: Path) -> int:
    pid, _ = recorded_process(folder)
    assert pid is not None
    return pid


def _register(client, tiny_model_dir: Path) -> int:
    return client.post("/models/registerModel", json={"name": "tiny", "source": str(tiny_model_dir)}).json()["id"]


def test_a_task_is_re_attached_or_failed_with_its_last_output(standin_server, tiny_model_dir, dataset_dir):
    with standin_server() as (client, _):
        ids = [client.post("/finetuning/createTask", json=task_body(name, tiny_model_dir, dataset_dir)).json()["id"]
               for name in ("survivor", "casualty")]  # two CPU slots: both run
        tasks = [until(lambda i=i: (t := client.get("/finetuning/getTask", params={"id": i}).json())["step"] == 1
                       and t, f"task {i} is training", timeout=TIMEOUT) for i in ids]
    survivor, casualty = tasks
    _crash_while_no_server_runs(Path(casualty["runDir"]), casualty["pid"])

    with standin_server() as (client, _):
        failed = until(lambda: (t := client.get("/finetuning/getTask", params={"id": casualty["id"]}).json())[
            "status"] == "failed" and t, "the dead worker is found", timeout=TIMEOUT)
        assert "without reporting an outcome" in failed["errorMessage"]
        assert "stand-in: crashing as asked" in failed["errorMessage"]  # its last output says why
        assert client.get("/finetuning/getTask", params={"id": survivor["id"]}).json()["status"] == "running"
        (Path(survivor["runDir"]) / "finish").touch()
        done = until(lambda: (t := client.get("/finetuning/getTask", params={"id": survivor["id"]}).json())[
            "status"] != "running" and t, "the re-attached worker finishes", timeout=TIMEOUT)
        assert done["status"] == "completed" and done["pid"] == survivor["pid"], done


def test_an_evaluation_is_re_attached_or_failed_with_its_last_output(standin_server, tiny_model_dir):
    with standin_server() as (client, _):
        model_id = _register(client, tiny_model_dir)
        survivor, casualty = (client.post("/evaluations/createEvaluation", json={
            "modelId": model_id, "dataset": "identity", "compareWithBase": False}).json() for _ in range(2))
        for evaluation in (survivor, casualty):
            until(lambda e=evaluation: has_progress(Path(e["jobDir"])), "the evaluation started", timeout=TIMEOUT)
    _crash_while_no_server_runs(Path(casualty["jobDir"]), _recorded_pid(Path(casualty["jobDir"])))

    with standin_server() as (client, platform):
        failed = client.get("/evaluations/getEvaluation", params={"id": casualty["id"]}).json()
        assert failed["status"] == "failed"
        assert failed["error"].startswith("the evaluation process ended without a result; its last output:")
        assert "stand-in: crashing as asked" in failed["error"]
        assert client.get("/evaluations/getEvaluation", params={"id": survivor["id"]}).json()["status"] == "running"
        (Path(survivor["jobDir"]) / "finish").touch()

        def row_status() -> str | None:  # the watcher follows it: no one needs to read it through the API
            with platform.db.session() as session:
                status = session.scalar(select(Evaluation.status).where(Evaluation.id == survivor["id"]))
            return status if status != "running" else None

        assert until(row_status, "the re-attached evaluation finishes", timeout=TIMEOUT) == "completed"


def test_an_export_is_re_attached_or_failed_with_its_last_output(standin_server, tiny_model_dir):
    with standin_server() as (client, platform):
        model_id = _register(client, tiny_model_dir)
        survivor, casualty = (client.post("/models/exportModel", json={"id": model_id}).json() for _ in range(2))
        folders = {job["id"]: platform.exports.root / job["id"] for job in (survivor, casualty)}
        for folder in folders.values():
            until(lambda f=folder: has_progress(f), "the export started", timeout=TIMEOUT)
    _crash_while_no_server_runs(folders[casualty["id"]], _recorded_pid(folders[casualty["id"]]))

    with standin_server() as (client, _):
        failed = client.get("/models/getExport", params={"id": casualty["id"]}).json()
        assert failed["status"] == "failed", failed  # not "running" forever: the restarted server finds it gone
        assert failed["error"].startswith("the export process ended without a result; its last output:")
        assert "stand-in: crashing as asked" in failed["error"]
        assert client.get("/models/getExport", params={"id": survivor["id"]}).json()["status"] == "running"
        (folders[survivor["id"]] / "finish").touch()
        done = until(lambda: (j := client.get("/models/getExport", params={"id": survivor["id"]}).json())[
            "status"] != "running" and j, "the re-attached export finishes", timeout=TIMEOUT)
        assert done["status"] == "completed", done


def test_a_deployment_is_re_attached_or_restarted_after_its_crash(standin_server, tiny_model_dir):
    with standin_server() as (client, _):
        model_id = _register(client, tiny_model_dir)
        created = [client.post("/deployments/createDeployment", json={"name": name, "modelId": model_id}).json()
                   for name in ("steady", "flaky")]
        steady, flaky = (until(lambda d=d: (r := client.get("/deployments/getDeployment", params={"id": d["id"]})
                                            .json())["status"] == "running" and r, "the deployment answers",
                               timeout=TIMEOUT) for d in created)
    signal_group(flaky["pid"], signal.SIGKILL)  # it crashes while no server runs
    until(lambda: not is_same_process(flaky["pid"], None), "the serving process is gone", timeout=TIMEOUT)

    with standin_server() as (client, _):
        restarted = until(lambda: (d := client.get("/deployments/getDeployment", params={"id": flaky["id"]}).json())[
            "status"] == "running" and d["restarts"] == 1 and d, "the crashed deployment is restarted",
            timeout=TIMEOUT)
        assert restarted["pid"] != flaky["pid"] and "crashed" in restarted["errorMessage"]
        kept = client.get("/deployments/getDeployment", params={"id": steady["id"]}).json()
        assert (kept["status"], kept["pid"], kept["restarts"]) == ("running", steady["pid"], 0)  # re-attached


def test_imports_and_validations_cut_by_a_restart_are_failed_as_interrupted(standin_server, tiny_model_dir):
    content = "\n".join(json.dumps({"instruction": q, "input": "", "output": a}) for q, a in QA).encode()
    with standin_server() as (client, platform):
        model_id = _register(client, tiny_model_dir)
        dataset = client.post("/datasets/createDataset", data={"name": "cut-short"},
                              files=[("files", ("train.jsonl", content, "application/jsonl"))]).json()
        until(lambda: client.get("/datasets/validateDataset", params={"id": dataset["id"]}).json()["status"]
              != "validating", "the validation finishes", timeout=TIMEOUT)
        with platform.db.session() as session:  # what a server that stopped in the middle of both leaves
            session.get_one(RegisteredModel, model_id).status = "importing"
            for version in session.scalars(select(DatasetVersion)):
                version.status = "validating"

    with standin_server() as (client, _):
        model = client.get("/models/getModel", params={"id": model_id}).json()
        assert model["status"] == "failed" and INTERRUPTED_BY_RESTART in model["errorMessage"]
        report = client.get("/datasets/validateDataset", params={"id": dataset["id"]}).json()
        assert report["status"] == "invalid" and INTERRUPTED_BY_RESTART in report["report"]["error"]
