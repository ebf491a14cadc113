"""What the planner knows about the host a run will train on: its devices and the optional packages installed.

The API process and the worker share one environment, so a package the API finds is one the worker can import.
Finding a package does not import it (importlib's finder only looks), so torch-heavy packages cost nothing here.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

from tuneforge.planning.devices import Device, detect_devices
from tuneforge.schemas.capabilities import PACKAGES


@dataclass(frozen=True)
class HostFacts:
    devices: list[Device]  # the devices the run will use (the first `count` free ones, or those named)
    packages: frozenset[str] = field(default_factory=frozenset)  # importable module names among PACKAGES

    @property
    def has_cuda(self) -> bool:
        return any(device.kind == "cuda" for device in self.devices)

    @property
    def min_cuda_capability(self) -> tuple[int, int] | None:
        capabilities = [d.compute_capability for d in self.devices if d.kind == "cuda" and d.compute_capability]
        return min(capabilities) if capabilities else None

    def describe(self) -> str:
        if not self.devices:
            return "no device"
        if self.has_cuda:
            return ", ".join(f"GPU {d.index} {d.name}" for d in self.devices)
        return f"CPU only ({self.devices[0].name})"


def installed_packages() -> frozenset[str]:
    found = set()
    for module in PACKAGES:
        try:
            if importlib.util.find_spec(module) is not None:
                found.add(module)
        except (ImportError, ValueError):  # a broken install counts as absent
            continue
    return frozenset(found)


def detect_host(cpu_slots: int = 1, count: int = 1) -> HostFacts:
    """This machine, for `tuneforge train`: its first `count` devices and the packages it has."""
    return HostFacts(detect_devices(cpu_slots)[:count], installed_packages())
