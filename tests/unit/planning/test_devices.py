"""The device inventory: GPUs through NVML (a fake pynvml here), CPU slots on a host without one."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import psutil
import pytest

from tuneforge.planning.devices import Device, cpu_model_name, detect_devices

GIB = 1024**3


def _fake_nvml(gpus: list[tuple[object, int, int]], init_error: Exception | None = None) -> types.ModuleType:
    """A pynvml stand-in: (name as NVML returns it, total, free) per GPU; records whether it was shut down."""
    module = types.ModuleType("pynvml")
    module.shut_down = False  # type: ignore[attr-defined]

    def init() -> None:
        if init_error:
            raise init_error

    def shutdown() -> None:
        module.shut_down = True  # type: ignore[attr-defined]

    module.nvmlInit = init  # type: ignore[attr-defined]
    module.nvmlShutdown = shutdown  # type: ignore[attr-defined]
    module.nvmlDeviceGetCount = lambda: len(gpus)  # type: ignore[attr-defined]
    module.nvmlDeviceGetHandleByIndex = lambda i: i  # type: ignore[attr-defined]
    module.nvmlDeviceGetName = lambda h: gpus[h][0]  # type: ignore[attr-defined]
    module.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(  # type: ignore[attr-defined]
        total=gpus[h][1], free=gpus[h][2], used=gpus[h][1] - gpus[h][2])
    return module


def test_gpus_from_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = _fake_nvml([("NVIDIA H100 80GB HBM3", 80 * GIB, 79 * GIB), (b"NVIDIA A10", 24 * GIB, 3 * GIB)])
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    assert detect_devices(cpu_slots=4) == [
        Device(0, "cuda", "NVIDIA H100 80GB HBM3", 80 * GIB, 79 * GIB),
        Device(1, "cuda", "NVIDIA A10", 24 * GIB, 3 * GIB),  # bytes names of old nvidia-ml-py releases decoded
    ]
    assert nvml.shut_down  # type: ignore[attr-defined]


def test_no_driver_means_cpu_slots(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml([], init_error=OSError("libnvidia-ml.so.1 not found")))
    devices = detect_devices(cpu_slots=2)
    assert [(d.index, d.kind) for d in devices] == [(0, "cpu"), (1, "cpu")]


def test_nvml_without_gpus_means_cpu_slots(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml([]))
    assert detect_devices(cpu_slots=1)[0].kind == "cpu"


def test_cpu_slots_share_the_ram(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # not installed: import fails
    devices = detect_devices(cpu_slots=3)
    total = psutil.virtual_memory().total
    assert [d.index for d in devices] == [0, 1, 2]
    assert all(d.kind == "cpu" and d.name for d in devices)
    assert sum(d.total_memory for d in devices) == pytest.approx(total, abs=3)
    assert all(0 < d.free_memory <= d.total_memory for d in devices)


def test_zero_cpu_slots_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with pytest.raises(ValueError, match="cpu_slots"):
        detect_devices(cpu_slots=0)


def test_cpu_name_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n", encoding="utf-8")
    assert cpu_model_name(info) == "AMD EPYC 7B13"
    assert cpu_model_name(tmp_path / "missing")  # falls back to what the platform says, never empty
