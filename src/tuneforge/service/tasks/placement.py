"""gpuConfig → where a task trains: which executor, how many machines × devices each, which nodes.

`{"cuda_visible_devices": "0,1"}` or `{"gpu_count": 2}` on this host (the local executor); `{"executor": "ray",
"nodes": 2, "gpu_count": 4}` is 8 Ray workers (ray_num_workers, which the worker's config then carries);
`{"executor": "kubernetes", "nodes": 2, "gpu_count": 8, "node_selector": {"pool": "a100"}}` a TrainJob of 2 nodes
× 8 GPUs. Every bad value is a problem naming its gpuConfig key."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from tuneforge.planning.devices import Device
from tuneforge.schemas import ConfigProblem

GPU_CONFIG_KEYS = ("cuda_visible_devices", "gpu_count", "memory_optimization", "executor", "nodes", "node_selector")
REMOTE = ("ray", "kubernetes")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
MAX_NODES = 1024


@dataclass
class RequestedPlacement:
    executor: str = "local"
    indexes: list[int] | None = None  # explicit local devices, or None for any `count` free ones
    count: int = 1  # devices in all (nodes × per node)
    nodes: int = 1
    problems: list[ConfigProblem] = field(default_factory=list)

    def plan_devices(self, devices: list[Device]) -> list[Device]:
        """The devices the planner checks and sizes the run for: this host's chosen ones, or for a cluster `count`
        devices like this host's first (the cluster's nodes are planned as this host's kind of device)."""
        if self.executor == "local":
            return [d for d in devices if self.indexes is None or d.index in self.indexes][:self.count]
        return [replace(devices[0], index=i) for i in range(self.count)] if devices else []


def requested_placement(gpu_config: object, devices: list[Device], executors: tuple[str, ...]) -> RequestedPlacement:
    if not isinstance(gpu_config, dict):
        why = "must be an object like {\"cuda_visible_devices\": \"0\"} or {\"executor\": \"ray\", \"nodes\": 2}"
        return RequestedPlacement(problems=[ConfigProblem("gpuConfig", why)])
    problems = [ConfigProblem(f"gpuConfig.{k}", f"unknown key; known: {', '.join(GPU_CONFIG_KEYS)}")
                for k in gpu_config if k not in GPU_CONFIG_KEYS]
    executor = gpu_config.get("executor") or "local"
    if executor not in executors:
        problems.append(ConfigProblem("gpuConfig.executor", f"{executor!r} is not an executor of this server "
                                                            f"(it has: {', '.join(executors)}); the kubernetes one "
                                                            "needs TUNEFORGE_KUBERNETES_IMAGE and _PVC"))
        executor = "local"
    nodes = _whole(gpu_config, "nodes", 1, MAX_NODES, problems)
    if nodes > 1 and executor == "local":
        problems.append(ConfigProblem("gpuConfig.nodes", "several machines need the ray or kubernetes executor "
                                                         "(gpuConfig.executor), or `tuneforge train` with NNODES on "
                                                         "each host"))
    problems += _node_selector_problems(gpu_config.get("node_selector"), executor)
    if executor in REMOTE:
        if gpu_config.get("cuda_visible_devices") not in (None, ""):
            problems.append(ConfigProblem("gpuConfig.cuda_visible_devices", f"names this host's devices, and the "
                                                                            f"{executor} cluster places the run: "
                                                                            "give gpu_count per node instead"))
        per_node = _whole(gpu_config, "gpu_count", 1, 64, problems)
        return RequestedPlacement(executor, None, nodes * per_node, nodes, problems)
    indexes, count, device_problems = local_devices(gpu_config, devices)
    return RequestedPlacement("local", indexes, count, 1, problems + device_problems)


def _whole(gpu_config: dict[str, Any], key: str, default: int, most: int, problems: list[ConfigProblem]) -> int:
    value = gpu_config.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most:
        problems.append(ConfigProblem(f"gpuConfig.{key}", f"must be a whole number from 1 to {most}, got {value!r}"))
        return default
    return value


def _node_selector_problems(selector: object, executor: str) -> list[ConfigProblem]:
    if selector in (None, {}):
        return []
    if executor != "kubernetes":
        return [ConfigProblem("gpuConfig.node_selector", "chooses Kubernetes nodes: it needs executor kubernetes")]
    if not isinstance(selector, dict) or len(selector) > 32 or not all(
            isinstance(k, str) and isinstance(v, str) and _label_name(k) and LABEL_VALUE.match(v)
            for k, v in selector.items()):
        return [ConfigProblem("gpuConfig.node_selector", "must map Kubernetes label names to label values (letters, "
                                                         "digits, '-', '_', '.'; ≤ 63 characters), like "
                                                         "{\"nvidia.com/gpu.product\": \"NVIDIA-H100-80GB-HBM3\"}")]
    return []


def _label_name(key: str) -> bool:
    """A qualified label name: an optional DNS subdomain prefix and '/', then a name of ≤ 63 characters."""
    prefix, _, name = key.rpartition("/")
    return bool(name) and len(name) <= 63 and bool(LABEL_VALUE.match(name)) and (
        not prefix or (len(prefix) <= 253 and bool(DNS_SUBDOMAIN.match(prefix))))


def local_devices(gpu_config: dict[str, Any], devices: list[Device]) -> tuple[list[int] | None, int,
                                                                               list[ConfigProblem]]:
    """`cuda_visible_devices: "0,1"` names devices; `gpu_count: N` asks for any N; default one."""
    problems: list[ConfigProblem] = []
    kind = devices[0].kind if devices else "cpu"
    have = (", ".join(str(d.index) for d in devices) or "none") if kind == "cuda" else \
        f"no GPU, CPU slots {', '.join(str(d.index) for d in devices)}"
    noun = "GPU" if kind == "cuda" else "device"
    visible = gpu_config.get("cuda_visible_devices")
    if visible not in (None, ""):
        try:
            indexes = [int(part) for part in str(visible).split(",") if part.strip()]
        except ValueError:
            return None, 1, [ConfigProblem("gpuConfig.cuda_visible_devices",
                                           f"{visible!r} is not a list of device numbers like \"0,1\"")]
        missing = [i for i in indexes if i not in {d.index for d in devices}]
        if missing:
            names = ", ".join(map(str, missing))
            problems.append(ConfigProblem("gpuConfig.cuda_visible_devices",
                                          f"{noun} {names} does not exist (this host has: {have})"))
        if len(set(indexes)) != len(indexes):
            problems.append(ConfigProblem("gpuConfig.cuda_visible_devices", "names a device twice"))
        return indexes, len(indexes), problems
    count = gpu_config.get("gpu_count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        return None, 1, [ConfigProblem("gpuConfig.gpu_count", f"must be a whole number ≥ 1, got {count!r}")]
    if count > len(devices):
        problems.append(ConfigProblem("gpuConfig.gpu_count", f"asks for {count} devices but this host has "
                                                             f"{len(devices)} ({have})"))
    return None, count, problems
