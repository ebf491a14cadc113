"""Runs on a Kubernetes cluster as Kubeflow Trainer v2 TrainJobs (k8s_manifest says why that CRD and how the worker
starts; k8s_status maps what the cluster reports).

The TrainJob's name follows from the run directory, so a restarted server finds every run again from its task row.
The run directory is on a PersistentVolumeClaim every pod mounts at the server's own home path: a stop is the run
directory's STOP file, which each rank reads at every step, exactly as on one host.

The official `kubernetes` client is imported on first use only (the optional extra `tuneforge[kubernetes]`), so a
server without it starts, and only a task sent to this executor fails, with the fix named.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

from tuneforge.rundir import RunDir
from tuneforge.service.runtime.executor import (
    Launched,
    Placement,
    ProcessState,
    WorkerRef,
    request_stop_file,
    wait_until_ended,
)
from tuneforge.service.runtime.k8s_manifest import (
    GROUP,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    PLURAL,
    TRAINJOB_LABEL,
    VERSION,
    KubernetesOptions,
    render_trainjob,
    trainjob_name,
)
from tuneforge.service.runtime.k8s_status import is_finished, trainjob_state

__all__ = ["KubernetesError", "KubernetesExecutor", "KubernetesOptions"]

log = logging.getLogger(__name__)
T = TypeVar("T")
FIELD_MANAGER = "tuneforge"
# A relaunch of the same run directory (a resumed task) first removes its finished TrainJob, whose name it reuses.
REPLACE_WAIT_S = 30.0
# (connect, read) seconds of every API call: an unreachable API server must not hold the scheduler's queue.
REQUEST_TIMEOUT = (5.0, 30.0)


class CustomObjects(Protocol):
    """The part of kubernetes.client.CustomObjectsApi this executor uses (a fake stands in for it in tests)."""

    def create_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str,
                                        body: dict[str, Any], *, field_manager: str | None = None,
                                        field_validation: str | None = None,
                                        _request_timeout: tuple[float, float] | None = None) -> object: ...

    def get_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str,
                                     name: str, *, _request_timeout: tuple[float, float] | None = None) -> object: ...

    def delete_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str, name: str, *,
                                        propagation_policy: str | None = None,
                                        _request_timeout: tuple[float, float] | None = None) -> object: ...


class CoreV1(Protocol):
    """The part of kubernetes.client.CoreV1Api this executor uses."""

    def list_namespaced_pod(self, namespace: str, *, label_selector: str | None = None,
                            _preload_content: bool = True,
                            _request_timeout: tuple[float, float] | None = None) -> Any: ...


class KubernetesError(OSError):
    """A Kubernetes API call failed; the message says what to fix. `status` is the HTTP status, None when the API
    server was not reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class KubernetesExecutor:
    name = "kubernetes"

    def __init__(self, options: KubernetesOptions, *, custom_objects: CustomObjects | None = None,
                 core: CoreV1 | None = None, poll_interval_s: float = 5.0, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        """`custom_objects` and `core` default to the official client's APIs, connected on first use.
        `poll_interval_s`: a run's state is asked of the API server at most this often (the scheduler polls every
        run twice a second, and a stop waits in a tight loop); a launch or a kill asks afresh."""
        self.options = options
        self._custom, self._core = custom_objects, core
        self.poll_interval_s = poll_interval_s
        self._clock, self._sleep = clock, sleep
        self._polled: dict[str, tuple[float, ProcessState]] = {}

    # -- Executor ------------------------------------------------------------------------------------------------
    def launch(self, run_dir: Path, placement: Placement) -> Launched:
        """Creates the TrainJob; an OSError (KubernetesError) says what to fix, and the scheduler fails the task
        with it."""
        try:
            body = render_trainjob(run_dir, _task_id(run_dir), placement, self.options)
        except ValueError as exc:
            raise KubernetesError(str(exc)) from exc
        name = str(body["metadata"]["name"])
        self._polled.pop(name, None)
        try:
            self._create(body)
        except KubernetesError as exc:
            if exc.status != 409:
                raise
            self._replace_finished(name, body)
        return Launched(pid=None, started_at=time.time(), command=list(body["spec"]["trainer"]["command"]))

    def poll(self, worker: WorkerRef) -> ProcessState:
        """The TrainJob's state, with its pods' (a pod's OOM kill or image pull error says more than the job's
        condition). An API server that cannot be asked counts as still running, with the reason logged: a brief
        outage must not fail a healthy run."""
        name = trainjob_name(worker.run_dir)
        asked_at, known = self._polled.get(name, (float("-inf"), None))
        if known is not None and time.monotonic() - asked_at < self.poll_interval_s:
            return known
        try:
            trainjob = self._get(name)
            pods = self._pods(name) if trainjob is not None else []
        except KubernetesError as exc:
            log.warning("TrainJob %s: %s", name, exc)
            state = ProcessState(alive=True, reason=str(exc))
        else:
            state = trainjob_state(trainjob, pods, now=self._clock(),
                                   unschedulable_timeout_s=self.options.unschedulable_timeout_s)
            if not state.alive and trainjob is not None and not is_finished(trainjob) \
                    and not (trainjob.get("metadata") or {}).get("deletionTimestamp"):
                # Ended for tuneforge (a failed container, a pod that cannot start) while Kubernetes would retry
                # it: a retry trains again from the start over the same run directory, and holds the GPUs meanwhile.
                self._delete(name)
        self._polled[name] = (time.monotonic(), state)
        return state

    def request_stop(self, worker: WorkerRef) -> None:
        request_stop_file(worker.run_dir)

    def kill(self, worker: WorkerRef) -> None:
        """Deletes the TrainJob (its pods first); never raises, as a local kill does not: a failure is logged, and
        the scheduler kills again on its next tick while the run still looks alive."""
        name = trainjob_name(worker.run_dir)
        self._polled.pop(name, None)
        self._delete(name)

    def wait(self, worker: WorkerRef, timeout: float) -> bool:
        return wait_until_ended(self, worker, timeout)

    # -- the API -------------------------------------------------------------------------------------------------
    def _create(self, body: dict[str, Any]) -> None:
        ns = self.options.namespace
        # Strict: a field this cluster's TrainJob CRD does not know (an older Trainer) is an error, not dropped.
        self._request("create a TrainJob", lambda: self._custom_api().create_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, body, field_manager=FIELD_MANAGER, field_validation="Strict",
            _request_timeout=REQUEST_TIMEOUT))

    def _get(self, name: str) -> dict[str, Any] | None:
        ns = self.options.namespace
        try:
            found = self._request("read a TrainJob", lambda: self._custom_api().get_namespaced_custom_object(
                GROUP, VERSION, ns, PLURAL, name, _request_timeout=REQUEST_TIMEOUT))
        except KubernetesError as exc:
            if exc.status == 404:
                return None
            raise
        return cast(dict[str, Any], found)

    def _pods(self, name: str) -> list[dict[str, Any]]:
        ns = self.options.namespace
        # The raw JSON, as the API server sends it: what k8s_status reads, and cheaper than building models.
        response = self._request("list pods", lambda: self._core_api().list_namespaced_pod(
            ns, label_selector=f"{TRAINJOB_LABEL}={name}", _preload_content=False, _request_timeout=REQUEST_TIMEOUT))
        return list(json.loads(response.data).get("items") or [])

    def _delete(self, name: str) -> None:
        ns = self.options.namespace
        try:
            self._request("delete a TrainJob", lambda: self._custom_api().delete_namespaced_custom_object(
                GROUP, VERSION, ns, PLURAL, name, propagation_policy="Foreground",
                _request_timeout=REQUEST_TIMEOUT))
        except KubernetesError as exc:
            if exc.status != 404:
                log.error("TrainJob %s could not be deleted: %s", name, exc)

    def _replace_finished(self, name: str, body: dict[str, Any]) -> None:
        """A TrainJob of this name exists: the same run directory ran before (a resumed task). A finished one of
        ours is deleted and the new one created; a running one, or somebody else's, is left alone."""
        ns = self.options.namespace
        existing = self._get(name)
        if existing is not None:
            labels = (existing.get("metadata") or {}).get("labels") or {}
            if labels.get(MANAGED_BY_LABEL) != MANAGED_BY:
                raise KubernetesError(f"a TrainJob named {name} already exists in namespace {ns} and tuneforge did "
                                      "not create it; delete or rename it, or use another namespace", 409)
            being_deleted = bool((existing.get("metadata") or {}).get("deletionTimestamp"))
            if not is_finished(existing) and not being_deleted:
                raise KubernetesError(f"TrainJob {name} of this run directory is still running in namespace {ns}; "
                                      f"stop it first (kubectl delete trainjob {name} -n {ns})", 409)
            self._delete(name)
            deadline = time.monotonic() + REPLACE_WAIT_S
            while self._get(name) is not None:
                if time.monotonic() > deadline:
                    raise KubernetesError(f"the previous TrainJob {name} of this run directory is still being "
                                          f"deleted after {REPLACE_WAIT_S:.0f} s; start the task again shortly", 409)
                self._sleep(1.0)
        self._create(body)

    def _request(self, action: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except KubernetesError:
            raise
        except Exception as exc:  # ApiException, urllib3's errors, a bad reply: each becomes one message to act on
            raise KubernetesError(describe_api_error(exc, action, self.options),
                                  _http_status(exc)) from exc

    def _custom_api(self) -> CustomObjects:
        if self._custom is None:
            self._connect()
        assert self._custom is not None
        return self._custom

    def _core_api(self) -> CoreV1:
        if self._core is None:
            self._connect()
        assert self._core is not None
        return self._core

    def _connect(self) -> None:
        """The client, configured from the pod's service account when the server runs in the cluster, else from the
        kubeconfig (KUBECONFIG or ~/.kube/config) — loaded on first use, into this executor's own configuration."""
        try:
            from kubernetes import client, config
        except ImportError as exc:
            raise KubernetesError("the Kubernetes executor needs the kubernetes client: "
                                  "pip install 'tuneforge[kubernetes]'") from exc
        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except config.ConfigException:
            try:
                # KUBECONFIG read now: the client reads it once, when first imported
                config.load_kube_config(config_file=os.environ.get("KUBECONFIG"),  # type: ignore[no-untyped-call]
                                        client_configuration=configuration)
            except (config.ConfigException, OSError) as exc:
                raise KubernetesError(f"no Kubernetes configuration: the server is not running in a pod with a "
                                      f"service account, and no usable kubeconfig was found ({exc}); set KUBECONFIG "
                                      "or run tuneforge inside the cluster") from exc
        api_client = client.ApiClient(configuration)
        self._custom = self._custom or cast(CustomObjects, client.CustomObjectsApi(api_client))
        self._core = self._core or cast(CoreV1, client.CoreV1Api(api_client))


def describe_api_error(exc: BaseException, action: str, options: KubernetesOptions) -> str:
    """What went wrong in words a cluster user acts on: missing permissions, a missing CRD, namespace or runtime,
    a webhook's refusal, an unreachable API server."""
    ns, status = options.namespace, _http_status(exc)
    if status is None:
        return (f"cannot reach the Kubernetes API server to {action}: {exc}; check that the cluster is up and the "
                "kubeconfig's server address (or the in-cluster service) is reachable from the tuneforge server")
    message = _status_message(exc)
    lowered = message.lower()
    if "admission webhook" in lowered and "denied" in lowered:
        hint = (f"; check that ClusterTrainingRuntime {options.runtime!r} exists (kubectl get "
                "clustertrainingruntimes)") if "runtime" in lowered else ""
        return f"Kubeflow Trainer refused the TrainJob ({status}): {message}{hint}"
    if "failed calling webhook" in lowered:
        return (f"Kubeflow Trainer's admission webhook did not answer ({status}): {message}; check the "
                "kubeflow-trainer controller pods")
    if status == 401:
        return (f"Kubernetes rejected tuneforge's credentials (401) to {action}: {message}; refresh the kubeconfig "
                "or the service account token")
    if status == 403:
        return (f"Kubernetes forbids tuneforge to {action} (403): {message}; grant its service account create, get "
                f"and delete on trainjobs.trainer.kubeflow.org and list on pods in namespace {ns} (a Role and "
                "RoleBinding)")
    if status == 404 and "namespace" in lowered:
        return f"namespace {ns} does not exist (404): {message}; create it or change the Kubernetes namespace setting"
    if status == 404:
        return (f"the cluster has no TrainJob API (404) to {action}: {message}; install Kubeflow Trainer v2.2 or "
                "later (the trainer.kubeflow.org CRDs and controller)")
    if status == 409:
        return f"conflict (409) to {action}: {message}"
    if status in (400, 422):
        hint = ("; this cluster's Kubeflow Trainer predates v2.2 (no runtimePatches): upgrade it"
                if "runtimepatches" in lowered else "")
        return f"Kubernetes rejected the TrainJob ({status}): {message}{hint}"
    return f"the Kubernetes API failed to {action} ({status}): {message}"


def _http_status(exc: BaseException) -> int | None:
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) and status > 0 else None


def _status_message(exc: BaseException) -> str:
    """The API server's own sentence (the `message` of its Status body), else the HTTP reason."""
    body = getattr(exc, "body", None)
    if body:
        try:
            parsed = json.loads(body)
        except (TypeError, ValueError):
            return str(body)[:500]
        if isinstance(parsed, dict) and parsed.get("message"):
            return str(parsed["message"])
    return str(getattr(exc, "reason", None) or exc)


def _task_id(run_dir: Path) -> str:
    """The task id the spec carries, for the TrainJob's label; the run directory's name when it has none."""
    try:
        return RunDir(run_dir).read_spec().task_id or run_dir.name
    except (OSError, ValueError):
        return run_dir.name
