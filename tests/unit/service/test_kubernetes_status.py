"""What a user reads when a run on Kubernetes ends or cannot start: recorded TrainJob and pod states (as the API
returns them) → alive, exit code, and a reason that names the pod and the fix. The executor polls, stops and kills
through the API (a fake one here; no cluster)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.fixtures.k8s_cluster import STATES, FakeCluster, api_error, recorded
from tuneforge.rundir import RunDir
from tuneforge.service.runtime.executor import ProcessState, WorkerRef
from tuneforge.service.runtime.k8s_manifest import KubernetesOptions
from tuneforge.service.runtime.k8s_status import trainjob_state
from tuneforge.service.runtime.kubernetes import KubernetesExecutor

SCHEMA = json.loads((Path(__file__).parents[2] / "fixtures" / "crds" / "trainjob.schema.json").read_text())
T0 = datetime.fromisoformat("2026-03-02T10:00:03Z").timestamp()  # when the recorded pods were (not) scheduled
MINUTE = 60.0


def _state(name: str, now: float = T0 + MINUTE, timeout: float | None = 900.0) -> Any:
    states = recorded(name)
    return trainjob_state(states["trainjob"], states["pods"]["items"], now=now, unschedulable_timeout_s=timeout)


@pytest.mark.parametrize("name", sorted(path.stem for path in STATES.glob("*.json")))
def test_recorded_states_are_shaped_as_the_api_returns_them(name):
    """The TrainJobs pass the CRD's schema; the pods survive a round trip through the client's own models (a
    misspelled key would be dropped, a wrong type refused)."""
    kubernetes = pytest.importorskip("kubernetes")
    states = recorded(name)
    assert list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(states["trainjob"])) == []
    pods = kubernetes.client.V1PodList.from_dict(states["pods"])
    again = kubernetes.client.ApiClient().sanitize_for_serialization(pods)
    assert json.loads(json.dumps(again).replace("+00:00", "Z")) == _without_nulls(states["pods"])


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return [_without_nulls(v) for v in value] if isinstance(value, list) else value


def test_a_running_job_is_alive_and_a_completed_one_exited_zero():
    running = _state("running")
    assert running.alive and running.reason is None
    complete = _state("complete")
    assert (complete.alive, complete.exit_code, complete.reason) == (False, 0, None)


def test_an_oom_kill_is_named_over_the_peer_it_took_down():
    state = _state("oom")
    assert not state.alive and state.exit_code == 137
    assert state.reason.startswith("pod tuneforge-task-12-node-0-0-7dq2x was OOMKilled (exit code 137) and "
                                   "Kubernetes restarted it")
    assert "give the node more memory" in state.reason and "per_device_train_batch_size" in state.reason
    assert state.reason.endswith("(pods failing besides it: 1)")


def test_a_crashed_worker_reports_its_exit_code_and_where_its_error_is():
    state = _state("crashed")
    assert (state.alive, state.exit_code) == (False, 1)
    assert state.reason == ("pod tuneforge-task-12-node-0-0-7dq2x: container node exited with code 1 (Error); "
                            "the run's train.log has the worker's own error")


def test_an_image_that_cannot_be_pulled_ends_the_run_naming_the_image():
    state = _state("image_pull")
    assert not state.alive and state.exit_code is None
    assert "image pull failed for image 'registry.example/tuneforge:0.9' (ImagePullBackOff)" in state.reason
    assert "NotFound" in state.reason and "Kubernetes image setting" in state.reason


def test_an_unschedulable_pod_waits_then_fails_with_the_schedulers_reason():
    waiting = _state("unschedulable", now=T0 + 5 * MINUTE)
    assert waiting.alive
    assert waiting.reason.startswith("unschedulable: pod tuneforge-task-12-node-0-0-7dq2x: 0/3 nodes are available: "
                                     "3 Insufficient nvidia.com/gpu.")
    assert waiting.reason.endswith("ask for fewer GPUs per node, wait for GPUs to free up, or add GPU nodes")
    given_up = _state("unschedulable", now=T0 + 16 * MINUTE)
    assert not given_up.alive and given_up.reason.endswith("(waited 16 min)")
    assert _state("unschedulable", now=T0 + 600 * MINUTE, timeout=None).alive


def test_an_unbound_volume_points_at_the_claim():
    state = _state("pvc_unbound")
    assert state.alive and "unbound immediate PersistentVolumeClaims" in state.reason
    assert state.reason.endswith("check that the tuneforge home's PersistentVolumeClaim exists in this namespace "
                                 "and is bound")


def test_an_evicted_pod_says_kubernetes_ended_it_and_why():
    state = _state("evicted")
    assert (state.alive, state.exit_code) == (False, 137)
    assert state.reason.startswith("pod tuneforge-task-12-node-0-0-7dq2x was ended by Kubernetes "
                                   "(TerminationByKubelet): The node was low on resource: memory.")
    assert state.reason.endswith("set the Kubernetes memory setting to what a node really uses, so the pod reserves it")


def test_a_failed_trainjob_without_pods_passes_on_its_condition():
    state = _state("failed")
    assert (state.alive, state.exit_code) == (False, None)
    assert state.reason == ("TrainJob tuneforge-task-12 failed (FailedJobs): jobset failed due to one or more job "
                            "failures (first failed job: tuneforge-task-12-node-0)")


def test_a_suspended_job_is_waiting_not_ended():
    state = _state("suspended")
    assert state.alive and "waiting for a queue (Kueue)" in state.reason


def test_a_deleted_or_deleting_trainjob_has_ended():
    gone = trainjob_state(None, [], now=T0)
    assert not gone.alive and "no longer exists" in gone.reason
    deleting = recorded("running")["trainjob"]
    deleting["metadata"]["deletionTimestamp"] = "2026-03-02T10:30:00Z"
    assert trainjob_state(deleting, [], now=T0) == ProcessState(False, None,
                                                                "its TrainJob tuneforge-task-12 is being deleted")


# -- the executor, against a fake API --------------------------------------------------------------------------------
@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs" / "task-12"


def _executor(cluster: FakeCluster, home: Path, **more: Any) -> KubernetesExecutor:
    options = KubernetesOptions(image="img:1", pvc="home", home_mount=str(home), namespace="ml")
    return KubernetesExecutor(options, custom_objects=cluster, core=cluster, **{"poll_interval_s": 0, **more})


def _cluster(name: str) -> FakeCluster:
    pytest.importorskip("kubernetes")  # the fake answers with the client's ApiException
    states = recorded(name)
    return FakeCluster({"tuneforge-task-12": states["trainjob"]}, states["pods"]["items"])


def test_poll_reads_the_trainjob_and_its_pods_by_label(tmp_path, run_dir):
    cluster = _cluster("running")
    assert _executor(cluster, tmp_path).poll(WorkerRef(run_dir)).alive
    assert [call for call, _ in cluster.calls] == [
        ("get", "trainer.kubeflow.org", "v1alpha1", "ml", "trainjobs"), ("list_pods", "ml")]
    assert cluster.calls[1][1] == {"label_selector": "tuneforge.io/trainjob=tuneforge-task-12"}


DELETED = {"name": "tuneforge-task-12", "propagation_policy": "Foreground", "_request_timeout": (5.0, 30.0)}


def test_a_failed_worker_ends_the_run_and_its_trainjob_is_deleted_before_kubernetes_retries_it(tmp_path, run_dir):
    cluster = _cluster("oom")
    state = _executor(cluster, tmp_path, clock=lambda: T0).poll(WorkerRef(run_dir))
    assert (state.alive, state.exit_code) == (False, 137)
    assert cluster.calls[-1] == (("delete", "trainer.kubeflow.org", "v1alpha1", "ml", "trainjobs"),
                                 DELETED)
    finished = _cluster("complete")  # a finished TrainJob is kept for inspection
    assert _executor(finished, tmp_path).poll(WorkerRef(run_dir)).exit_code == 0
    assert "tuneforge-task-12" in finished.trainjobs


def test_api_trouble_while_polling_keeps_the_run_alive_with_the_reason(tmp_path, run_dir):
    pytest.importorskip("kubernetes")
    forbidden = api_error(403, 'trainjobs.trainer.kubeflow.org "tuneforge-task-12" is forbidden: User '
                               '"system:serviceaccount:ml:tuneforge" cannot get resource "trainjobs"')
    state = _executor(FakeCluster(fail_get=forbidden), tmp_path).poll(WorkerRef(run_dir))
    assert state.alive and "forbids tuneforge to read a TrainJob (403)" in state.reason
    refused = _executor(FakeCluster(fail_get=ConnectionRefusedError(111, "Connection refused")), tmp_path)
    assert "cannot reach the Kubernetes API server" in refused.poll(WorkerRef(run_dir)).reason


def test_stop_asks_through_the_run_directory_and_kill_deletes_the_trainjob(tmp_path, run_dir):
    cluster = _cluster("running")
    executor = _executor(cluster, tmp_path)
    run_dir.mkdir(parents=True)
    executor.request_stop(WorkerRef(run_dir))
    assert RunDir(run_dir).stop_file.is_file() and len(cluster.calls) == 0  # the worker reads it at every step
    executor.kill(WorkerRef(run_dir))
    assert cluster.calls[-1][1] == DELETED
    assert executor.wait(WorkerRef(run_dir), 1.0)
    assert "no longer exists" in executor.poll(WorkerRef(run_dir)).reason
    executor.kill(WorkerRef(run_dir))  # killing what is gone is no error


def test_polls_are_spaced_so_many_runs_do_not_flood_the_api_server(tmp_path, run_dir):
    cluster = _cluster("running")
    executor = _executor(cluster, tmp_path, poll_interval_s=60.0)
    for _ in range(5):
        assert executor.poll(WorkerRef(run_dir)).alive
    assert len(cluster.calls) == 2
    executor.kill(WorkerRef(run_dir))
    assert not executor.poll(WorkerRef(run_dir)).alive  # a kill asks afresh
