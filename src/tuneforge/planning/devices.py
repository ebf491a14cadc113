"""The devices tasks run on: the GPUs NVML reports, or a configurable number of CPU slots on a GPU-less host.

NVML comes from the optional `nvidia-ml-py` package (`pip install tuneforge[gpu]`); without it, or without a
driver, the host is treated as CPU-only. NVML numbers GPUs in PCI bus order: launch workers with
CUDA_DEVICE_ORDER=PCI_BUS_ID so that CUDA_VISIBLE_DEVICES means the same indexes.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)
CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class Device:
    index: int
    kind: Literal["cuda", "cpu"]
    name: str
    total_memory: int  # bytes; a CPU slot gets its share of the system RAM
    free_memory: int  # bytes free now
    compute_capability: tuple[int, int] | None = None  # CUDA (major, minor); None for CPU slots


def detect_devices(cpu_slots: int = 1) -> list[Device]:
    """The host's GPUs when NVML finds any, else `cpu_slots` CPU slots sharing the RAM evenly."""
    gpus = _nvml_devices()
    if gpus:
        return gpus
    return cpu_devices(cpu_slots)


def cpu_devices(slots: int) -> list[Device]:
    import psutil

    if slots < 1:
        raise ValueError(f"cpu_slots must be ≥ 1, got {slots}")
    memory = psutil.virtual_memory()
    name = cpu_model_name()
    return [Device(i, "cpu", name, memory.total // slots, memory.available // slots) for i in range(slots)]


def cpu_model_name(cpuinfo: Path = CPUINFO) -> str:
    """The processor's marketing name ("AMD EPYC 7B13"), from /proc/cpuinfo where Linux has it."""
    try:
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "CPU"


def _nvml_devices() -> list[Device]:
    try:
        nvml = importlib.import_module("pynvml")
    except ImportError:
        return []
    try:
        nvml.nvmlInit()
    except Exception as exc:  # no driver / no GPU: NVMLError subclasses, or OSError when libnvidia-ml is absent
        log.debug("NVML unavailable: %s", exc)
        return []
    try:
        return [_nvml_device(nvml, index) for index in range(nvml.nvmlDeviceGetCount())]
    except Exception as exc:  # a GPU that falls off the bus mid-query: report none rather than half a list
        log.warning("NVML could not list the GPUs: %s", exc)
        return []
    finally:
        with contextlib.suppress(Exception):  # shutting NVML down must not hide the list we have
            nvml.nvmlShutdown()


def _nvml_device(nvml: Any, index: int) -> Device:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    name = nvml.nvmlDeviceGetName(handle)
    if isinstance(name, bytes):  # older nvidia-ml-py releases return bytes
        name = name.decode("utf-8", errors="replace")
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    return Device(index, "cuda", str(name), int(memory.total), int(memory.free), _capability(nvml, handle))


def _capability(nvml: Any, handle: Any) -> tuple[int, int] | None:
    try:
        major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
    except Exception:  # older drivers lack the call: the planner then skips capability checks
        return None
    return int(major), int(minor)
