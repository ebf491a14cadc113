"""A TrainJob and its pods, as the Kubernetes API returns them (JSON, camelCase), → the executor's `ProcessState`.

A run is one attempt, as under the local executor: a worker container that failed has ended the run even when
Kubernetes would restart it (restartPolicy OnFailure, a Job's backoffLimit), because a restarted worker would train
again from the start over the same run directory. Reasons name the pod and say what to change. Pure: the caller
fetches the objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tuneforge.service.runtime.executor import ProcessState

# Waiting reasons that will not clear by waiting: the pod never starts until someone changes the image or config.
# (ErrImagePull alone is a first failed try that may be a registry hiccup; ImagePullBackOff follows a retry.)
_IMAGE_FAILURES = ("ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
_CONFIG_FAILURES = ("CreateContainerConfigError",)
_SIGNALS = {137: "SIGKILL", 143: "SIGTERM", 134: "SIGABRT", 139: "SIGSEGV"}


@dataclass(frozen=True)
class _Failure:
    pod: str
    exit_code: int | None
    reason: str
    root_cause: bool  # OOM, eviction, preemption, a pull error: not a rank that died because a peer did
    finished_at: float


def trainjob_state(trainjob: Mapping[str, Any] | None, pods: Sequence[Mapping[str, Any]] = (), *, now: float,
                   unschedulable_timeout_s: float | None = None) -> ProcessState:
    """Alive while the TrainJob runs or waits to run; ended (exit code when a container reported one) when it
    completed, failed, any worker container failed, or no pod can start."""
    if trainjob is None:
        return ProcessState(alive=False, reason="its TrainJob no longer exists in the cluster: deleted by a kill, "
                                                "by kubectl or by a cleanup")
    metadata = trainjob.get("metadata") or {}
    name = str(metadata.get("name", "?"))
    status = trainjob.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    if _is_true(conditions.get("Complete")):
        return ProcessState(alive=False, exit_code=0)
    if metadata.get("deletionTimestamp"):  # deleted (a kill): its pods are being stopped, the run is over
        return ProcessState(alive=False, reason=f"its TrainJob {name} is being deleted")
    failure = _first_failure(pods, now)
    if failure is not None:
        return ProcessState(alive=False, exit_code=failure.exit_code, reason=failure.reason)
    failed = conditions.get("Failed")
    if _is_true(failed):
        assert failed is not None
        return ProcessState(alive=False, reason=_failed_condition(name, failed))
    failed_jobs = sum(int(job.get("failed") or 0) for job in status.get("jobsStatus") or [])
    if failed_jobs:
        return ProcessState(alive=False, reason=f"TrainJob {name}: {failed_jobs} node job(s) failed and their pods "
                                                "are gone; the run's train.log has the worker's own error")
    if _is_true(conditions.get("Suspended")):
        return ProcessState(alive=True, reason=f"TrainJob {name} is suspended: waiting for a queue (Kueue) to admit "
                                               "it, or paused by an admin")
    waiting = _unschedulable(pods, now, unschedulable_timeout_s)
    if waiting is not None:
        return waiting
    return ProcessState(alive=True)


def is_finished(trainjob: Mapping[str, Any]) -> bool:
    conditions = (trainjob.get("status") or {}).get("conditions") or []
    return any(c.get("type") in ("Complete", "Failed") and _is_true(c) for c in conditions)


def _is_true(condition: Mapping[str, Any] | None) -> bool:
    return condition is not None and condition.get("status") == "True"


def _failed_condition(name: str, condition: Mapping[str, Any]) -> str:
    reason, message = condition.get("reason") or "Failed", condition.get("message") or ""
    text = f"TrainJob {name} failed ({reason}): {message}".rstrip(": ")
    if reason == "DeadlineExceeded":
        return f"{text}; it ran past its activeDeadlineSeconds"
    if reason == "TrainingRuntimeNotSupported":
        return f"{text}; set the Kubernetes runtime setting to a torch ClusterTrainingRuntime (torch-distributed)"
    return text


def _first_failure(pods: Sequence[Mapping[str, Any]], now: float) -> _Failure | None:
    """The failure that most likely caused the others: under torchrun one rank's OOM makes every peer exit with an
    error, so an OOM, eviction or pull error outranks a plain non-zero exit, and the earliest exit outranks later."""
    failures = [f for pod in pods for f in _pod_failures(pod, now)]
    if not failures:
        return None
    first = min(failures, key=lambda f: (not f.root_cause, f.finished_at))
    others = len({f.pod for f in failures} - {first.pod})
    if others:
        return _Failure(first.pod, first.exit_code, f"{first.reason} (pods failing besides it: {others})",
                        first.root_cause, first.finished_at)
    return first


def _pod_failures(pod: Mapping[str, Any], now: float) -> list[_Failure]:
    name = str((pod.get("metadata") or {}).get("name", "?"))
    status = pod.get("status") or {}
    failures = []
    for container in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        state, last = container.get("state") or {}, container.get("lastState") or {}
        restarts = int(container.get("restartCount") or 0)
        if state.get("terminated") and state["terminated"].get("exitCode", 0) != 0:
            failures.append(_terminated(name, container, state["terminated"], restarted=False))
        elif restarts and last.get("terminated") and last["terminated"].get("exitCode", 0) != 0:
            failures.append(_terminated(name, container, last["terminated"], restarted=True))
        waiting = state.get("waiting") or {}
        why, message = waiting.get("reason"), waiting.get("message", "")
        if why in _IMAGE_FAILURES:
            reason = (f"pod {name}: image pull failed for image {container.get('image')!r} ({why}): {message}; check "
                      "the image name and tag in the Kubernetes image setting, and that the cluster may pull it "
                      "(imagePullSecrets of the namespace's service account)")
            failures.append(_Failure(name, None, reason, True, now))
        elif why in _CONFIG_FAILURES:
            reason = f"pod {name} cannot start its container ({why}): {message}; create what it names in the namespace"
            failures.append(_Failure(name, None, reason, True, now))
    evicted = _evicted(name, status, failures, now)
    return [evicted] if evicted is not None else failures


def _evicted(name: str, status: Mapping[str, Any], failures: list[_Failure], now: float) -> _Failure | None:
    """A pod Kubernetes itself ended (evicted, preempted, its node lost): that, not the exit code its killed
    container shows, is the cause to report."""
    disruption = next((c for c in status.get("conditions") or []
                       if c.get("type") == "DisruptionTarget" and _is_true(c)), None)
    if status.get("phase") != "Failed" and disruption is None:
        return None
    if status.get("phase") == "Failed" and not status.get("reason") and disruption is None and failures:
        return None  # an ordinary failed container (restartPolicy Never): its exit code says it
    why, message = status.get("reason") or "Failed", str(status.get("message") or "")
    if disruption is not None:
        why, message = str(disruption.get("reason") or why), str(disruption.get("message") or message)
    hint = ""
    if "memory" in message.lower():
        hint = "; set the Kubernetes memory setting to what a node really uses, so the pod reserves it"
    elif "ephemeral-storage" in message.lower():
        hint = "; the run wrote too much to the node's own disk: keep caches on the shared home"
    code = next((f.exit_code for f in failures if f.exit_code is not None), None)
    finished = min((f.finished_at for f in failures), default=now)
    return _Failure(name, code, f"pod {name} was ended by Kubernetes ({why}): {message}".rstrip(": ") + hint, True,
                    finished)


def _terminated(pod: str, container: Mapping[str, Any], terminated: Mapping[str, Any], restarted: bool) -> _Failure:
    code = int(terminated.get("exitCode", 1))
    why = terminated.get("reason") or "Error"
    finished = _timestamp(terminated.get("finishedAt")) or float("inf")
    again = " and Kubernetes restarted it" if restarted else ""
    if why == "OOMKilled":
        reason = (f"pod {pod} was OOMKilled (exit code {code}){again}: it ran out of memory; give the node more "
                  "memory (the Kubernetes memory setting) or lower per_device_train_batch_size or cutoff_len")
        return _Failure(pod, code, reason, True, finished)
    if why in ("ContainerCannotRun", "StartError"):
        reason = (f"pod {pod} could not run its command ({why}): {terminated.get('message', '')}; the image needs "
                  "tuneforge and torch installed, with torchrun on PATH")
        return _Failure(pod, code, reason, True, finished)
    signal = f", {_SIGNALS[code]}" if code in _SIGNALS else ""
    message = f": {terminated['message'].strip()}" if terminated.get("message") else ""
    reason = (f"pod {pod}: container {container.get('name')} exited with code {code} ({why}{signal}){again}"
              f"{message}; the run's train.log has the worker's own error")
    return _Failure(pod, code, reason, False, finished)


def _unschedulable(pods: Sequence[Mapping[str, Any]], now: float, timeout_s: float | None) -> ProcessState | None:
    """A pod the scheduler cannot place: still alive (nodes may be added, GPUs freed) until `timeout_s`."""
    for pod in pods:
        status = pod.get("status") or {}
        if status.get("phase") not in (None, "Pending"):
            continue
        for condition in status.get("conditions") or []:
            if condition.get("type") != "PodScheduled" or condition.get("status") != "False" \
                    or condition.get("reason") != "Unschedulable":
                continue
            name = (pod.get("metadata") or {}).get("name", "?")
            message = str(condition.get("message") or "").strip()
            since = _timestamp(condition.get("lastTransitionTime"))
            waited = now - since if since is not None else 0.0
            reason = f"unschedulable: pod {name}: {message}{_placement_hint(message)}"
            if timeout_s is not None and waited >= timeout_s:
                return ProcessState(alive=False, reason=f"{reason} (waited {waited / 60:.0f} min)")
            return ProcessState(alive=True, reason=reason)
    return None


def _placement_hint(message: str) -> str:
    lowered = message.lower()
    if "persistentvolumeclaim" in lowered:
        return "; check that the tuneforge home's PersistentVolumeClaim exists in this namespace and is bound"
    if "nvidia.com/gpu" in lowered:
        return "; ask for fewer GPUs per node, wait for GPUs to free up, or add GPU nodes"
    if "affinity/selector" in lowered:
        return "; no node carries the labels the task's node_selector asks for"
    if "insufficient" in lowered:
        return "; lower the Kubernetes cpu / memory settings or add nodes"
    return ""


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None
