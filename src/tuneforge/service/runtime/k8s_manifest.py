"""The Kubernetes object a run becomes: a Kubeflow Trainer v2 `TrainJob` (trainer.kubeflow.org/v1alpha1) on the
`torch-distributed` ClusterTrainingRuntime, rendered as a plain dict.

Why TrainJob and not PyTorchJob: Kubeflow Trainer v2 is the maintained project, and the v1 training-operator's
PyTorchJob is in maintenance as its legacy API; a TrainJob names only what differs per run (image, command, nodes,
processes, resources) and leaves the pod template to a runtime the cluster admin owns. Field names follow the
TrainJob CRD of Trainer v2.3.0: per-run pod settings (node selector, the shared volume) go through `runtimePatches`,
which replaced `podTemplateOverrides` in v2.2.

How the worker starts: the torch runtime injects PET_NNODES, PET_NPROC_PER_NODE, PET_NODE_RANK, PET_MASTER_ADDR and
PET_MASTER_PORT into the container, and torchrun reads its options from those, so the command is a bare
`torchrun -m tuneforge.engine.run RUN_DIR` on every node. The run directory lives on a PersistentVolumeClaim mounted
at the tuneforge home, the same path the service sees, so spec.json, events and checkpoints need no copying.

Pure: nothing here talks to a cluster or imports the kubernetes client.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import PurePath, PurePosixPath
from typing import Any

from tuneforge.rundir.launch import SHUTDOWN_TIMEOUT_S, WORKER_MODULE
from tuneforge.service.runtime.executor import Placement

GROUP = "trainer.kubeflow.org"
VERSION = "v1alpha1"
PLURAL = "trainjobs"
KIND = "TrainJob"
RUNTIME_KIND = "ClusterTrainingRuntime"
# The torch runtime's replicated job and its trainer container are both called "node"; patches must target them.
NODE = "node"
HOME_VOLUME = "tuneforge-home"
PATCH_MANAGER = "tuneforge.io/kubernetes-executor"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "tuneforge"
TASK_ID_LABEL = "tuneforge.io/task-id"
# On the pods too (through the runtime patch), so poll finds a job's pods by one selector.
TRAINJOB_LABEL = "tuneforge.io/trainjob"
GPU_RESOURCE = "nvidia.com/gpu"

# JobSet names each pod's hostname `<trainjob>-node-<job index>-<pod index>`, which must stay a 63-character DNS
# label; 45 leaves room for three-digit indexes. The CRD itself allows 63.
NAME_MAX = 45
_RFC1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
# Kubernetes' resource.Quantity grammar (the same pattern the CRD puts on resourcesPerNode).
_QUANTITY = re.compile(r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
                       r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$")


@dataclass(frozen=True)
class KubernetesOptions:
    """Where and how runs start on the cluster (the Kubernetes part of the settings).

    `home_mount` is the tuneforge home as the service sees it; `pvc` is mounted there in every pod, so a run
    directory's path means the same file on the server and on every node."""

    image: str
    pvc: str
    home_mount: str
    namespace: str = "default"
    runtime: str = "torch-distributed"
    cpu: str | None = None  # per node, a Kubernetes quantity ("16", "3500m")
    memory: str | None = None  # per node ("64Gi")
    # A pod the scheduler cannot place for this long fails the task with the scheduler's reason; None waits forever
    # (a cluster autoscaler adding GPU nodes usually takes minutes, not a quarter of an hour).
    unschedulable_timeout_s: float | None = 900.0

    def __post_init__(self) -> None:
        problems = []
        if not self.image.strip():
            problems.append("image: empty; name the container image that has tuneforge and torch installed")
        if not self.pvc.strip():
            problems.append("pvc: empty; name the PersistentVolumeClaim that holds the tuneforge home")
        if not PurePosixPath(self.home_mount).is_absolute():
            problems.append(f"home_mount: {self.home_mount!r} is not an absolute path")
        if not _RFC1035.match(self.namespace) or len(self.namespace) > 63:
            problems.append(f"namespace: {self.namespace!r} is not a valid Kubernetes namespace name")
        if not self.runtime.strip():
            problems.append("runtime: empty; name a ClusterTrainingRuntime (torch-distributed)")
        for name, value in (("cpu", self.cpu), ("memory", self.memory)):
            if value is not None and not _QUANTITY.match(value):
                problems.append(f"{name}: {value!r} is not a Kubernetes quantity (e.g. '16', '500m', '64Gi')")
        if self.unschedulable_timeout_s is not None and self.unschedulable_timeout_s <= 0:
            problems.append(f"unschedulable_timeout_s: {self.unschedulable_timeout_s}, expected > 0 or None")
        if problems:
            raise ValueError("Kubernetes settings: " + "; ".join(problems))


def trainjob_name(run_dir: PurePath | str) -> str:
    """`tuneforge-<run dir name>` as an RFC 1035 label, the same on every call, so a restarted server finds the
    TrainJob again from the run directory alone. A name too long is cut and keeps a hash of the whole."""
    base = re.sub(r"[^a-z0-9]+", "-", PurePosixPath(str(run_dir)).name.lower()).strip("-") or "run"
    name = f"tuneforge-{base}"
    if len(name) > NAME_MAX:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = f"{name[:NAME_MAX - 9].rstrip('-')}-{digest}"
    return name


def label_value(text: str) -> str:
    """Any text as a valid label value (63 characters of [A-Za-z0-9-_.], alphanumeric at both ends)."""
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63]
    value = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)
    assert _LABEL_VALUE.match(value)
    return value


def container_command(run_dir: PurePath | str) -> list[str]:
    """What every node runs. torchrun takes nnodes, nproc_per_node, node_rank and the master address from the PET_*
    variables the runtime injects; rank 0 writes the events, as under the local torchrun."""
    return ["torchrun", "-m", WORKER_MODULE, str(run_dir)]


def render_trainjob(run_dir: PurePath | str, task_id: str, placement: Placement,
                    options: KubernetesOptions) -> dict[str, Any]:
    """The TrainJob for one run: `placement.nodes` pods with `placement.devices_per_node` processes each (one per
    GPU when kind is cuda), the home PVC mounted at the same path as on the server."""
    path = PurePosixPath(str(run_dir))
    home = PurePosixPath(options.home_mount)
    if not path.is_absolute() or not path.is_relative_to(home):
        raise ValueError(f"run directory {path} is not under the tuneforge home {home}, where PersistentVolumeClaim "
                         f"{options.pvc!r} is mounted in the pods: they could not read its spec")
    if placement.nodes < 1 or placement.devices_per_node < 1:
        raise ValueError(f"placement: {placement.nodes} nodes × {placement.devices_per_node} devices per node; "
                         "a run needs at least 1 × 1")
    if placement.kind not in ("cuda", "cpu"):
        raise ValueError(f"placement kind: {placement.kind!r}, expected 'cuda' or 'cpu'")

    name = trainjob_name(path)
    labels = {MANAGED_BY_LABEL: MANAGED_BY, TASK_ID_LABEL: label_value(task_id), TRAINJOB_LABEL: name}
    trainer: dict[str, Any] = {
        "image": options.image,
        "command": container_command(path),
        "numNodes": placement.nodes,
        "numProcPerNode": placement.devices_per_node,
        "env": _environment(placement, options),
    }
    resources = _resources(placement, options)
    if resources:
        trainer["resourcesPerNode"] = resources
    pod_spec: dict[str, Any] = {
        "volumes": [{"name": HOME_VOLUME, "persistentVolumeClaim": {"claimName": options.pvc}}],
        "containers": [{"name": NODE, "volumeMounts": [{"name": HOME_VOLUME, "mountPath": str(home)}]}],
    }
    if placement.node_selector:
        pod_spec["nodeSelector"] = dict(placement.node_selector)
    pod_template = {"metadata": {"labels": dict(labels)}, "spec": pod_spec}
    patch = {
        "manager": PATCH_MANAGER,
        "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [
            {"name": NODE, "template": {"spec": {"template": pod_template}}},
        ]}}},
    }
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": name, "namespace": options.namespace, "labels": labels},
        "spec": {
            "runtimeRef": {"apiGroup": GROUP, "kind": RUNTIME_KIND, "name": options.runtime},
            "trainer": trainer,
            "runtimePatches": [patch],
        },
    }


def _environment(placement: Placement, options: KubernetesOptions) -> list[dict[str, str]]:
    """The worker's environment in the pod. The PET_* variables are the runtime's to set (it refuses a TrainJob
    that sets them)."""
    env = {
        "TUNEFORGE_HOME": options.home_mount,
        "PYTHONUNBUFFERED": "1",  # log lines reach `kubectl logs` as they are written
        "TOKENIZERS_PARALLELISM": "false",  # the tokenizers' own thread pool would fight the ranks for cores
        # torchrun's default 30 s between SIGTERM and SIGKILL is less than a large model needs to save
        "TORCH_ELASTIC_SHUTDOWN_TIMEOUT": str(SHUTDOWN_TIMEOUT_S),
    }
    if placement.kind == "cpu":
        # CUDA images set NVIDIA_VISIBLE_DEVICES=all, so a pod that asked for no GPU may still see the node's GPUs
        env["CUDA_VISIBLE_DEVICES"] = ""
    threads = _threads_per_process(placement, options)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return [{"name": key, "value": value} for key, value in env.items()]


def _threads_per_process(placement: Placement, options: KubernetesOptions) -> int | None:
    """CPU runs: the node's requested cores shared by its processes (the placement's count was worked out for the
    server's own host, not the cluster's nodes); without a cpu setting, the placement's. torchrun would otherwise
    give each process a single thread."""
    if placement.kind != "cpu":
        return placement.threads
    cores = _cores(options.cpu) if options.cpu is not None else None
    if cores is None:
        return placement.threads
    return max(1, int(cores // placement.devices_per_node))


def _cores(quantity: str) -> float | None:
    try:
        return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)
    except ValueError:
        return None  # an exotic spelling ("1e1"): leave the thread count to the placement


def _resources(placement: Placement, options: KubernetesOptions) -> dict[str, dict[str, str | int]]:
    """GPUs as limits (extended resources take limits; requests follow). CPU only as a request: a CPU limit
    throttles the data loader without protecting anyone. Memory as request and limit, so the pod is not the first
    evicted when a node runs short."""
    requests: dict[str, str | int] = {}
    limits: dict[str, str | int] = {}
    if placement.kind == "cuda":
        limits[GPU_RESOURCE] = placement.devices_per_node
    if options.cpu is not None:
        requests["cpu"] = options.cpu
    if options.memory is not None:
        requests["memory"] = limits["memory"] = options.memory
    return {key: value for key, value in (("requests", requests), ("limits", limits)) if value}
