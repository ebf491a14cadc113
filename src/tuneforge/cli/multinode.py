"""How `tuneforge train` starts its worker: one process, torchrun over this host's GPUs, or one node of several.

Several plain hosts train one run as LLaMA-Factory documents it: the same command on every node with NNODES,
NODE_RANK, MASTER_ADDR and MASTER_PORT set; FORCE_TORCHRUN=1 starts torchrun on one device too, NPROC_PER_NODE
sets the processes per node (default: this host's GPUs, or one on a CPU host). Before torchrun starts, node 0
checks that it can listen on the master address and the other nodes that they can reach it, so a firewall or a
wrong address is named in seconds instead of surfacing as a rendezvous timeout minutes later.
"""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from tuneforge.rundir.launch import NodeLayout

if TYPE_CHECKING:
    from tuneforge.planning.devices import Device

DEFAULT_MASTER_PORT = 29500
DEFAULT_RENDEZVOUS_TIMEOUT_S = 300.0
TRUE = ("1", "true", "yes", "y")


class LaunchError(Exception):
    """A launch setting that cannot work, or a node that cannot reach the others: what and what to do."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class Launch:
    nproc: int  # worker processes on this node
    torchrun: bool
    nodes: NodeLayout | None
    ray: bool = False  # ray_num_workers: the Ray driver starts the workers on the cluster

    @property
    def is_main_node(self) -> bool:
        return self.nodes is None or self.nodes.node_rank == 0


def visible_gpus(env: Mapping[str, str]) -> list[Device]:
    """The GPUs this command may use: the host's, narrowed by CUDA_VISIBLE_DEVICES as the ranks will see them
    (indexes; a list of UUIDs is taken by count); none on a CPU host or with CUDA_VISIBLE_DEVICES empty."""
    from tuneforge.planning.devices import detect_devices

    gpus = [d for d in detect_devices() if d.kind == "cuda"]
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return gpus
    parts = [part.strip() for part in visible.split(",") if part.strip()]
    if all(part.isdigit() for part in parts):
        by_index = {d.index: d for d in gpus}
        return [by_index[int(part)] for part in parts if int(part) in by_index]
    return gpus[:len(parts)]


def run_devices(gpus: list[Device], how: Launch) -> list[Device]:
    """The devices of every rank the launch starts: this node's (one per process) times the nodes, the other
    nodes taken to be alike, so the estimate's steps, sharding and throughput count every rank."""
    from tuneforge.planning.devices import cpu_devices

    here = gpus[:how.nproc] if gpus else cpu_devices(how.nproc)
    nnodes = how.nodes.nnodes if how.nodes else 1
    return [replace(device, index=k) for k, device in enumerate(here * nnodes)]


def rendezvous_timeout(env: Mapping[str, str]) -> float:
    raw = env.get("TUNEFORGE_RENDEZVOUS_TIMEOUT_S", "").strip()
    try:
        value = float(raw) if raw else DEFAULT_RENDEZVOUS_TIMEOUT_S
    except ValueError:
        value = -1.0
    if not value > 0:
        raise LaunchError(f"TUNEFORGE_RENDEZVOUS_TIMEOUT_S={raw!r} is not a positive number of seconds",
                          f"unset it (default {DEFAULT_RENDEZVOUS_TIMEOUT_S:g} s) or give seconds")
    return value


def launch_from_env(env: Mapping[str, str], devices: int, sharded: bool = False) -> Launch:
    """The launch the environment asks for on a host with `devices` GPUs (0 on a CPU host)."""
    nproc = _int(env, "NPROC_PER_NODE", max(devices, 1), minimum=1)
    nnodes = _int(env, "NNODES", 1, minimum=1)
    nodes = None
    if nnodes > 1:
        node_rank = _int(env, "NODE_RANK", -1, minimum=0)
        if node_rank < 0:
            raise LaunchError("NNODES is set but NODE_RANK is not", "set NODE_RANK to 0 on the master node and "
                                                                     "1 … NNODES-1 on the others")
        if node_rank >= nnodes:
            raise LaunchError(f"NODE_RANK {node_rank} is not below NNODES {nnodes}",
                              f"number the nodes 0 … {nnodes - 1}")
        master = env.get("MASTER_ADDR", "").strip()
        if not master:
            raise LaunchError("NNODES is set but MASTER_ADDR is not",
                              "set MASTER_ADDR to node 0's address (as the other nodes reach it) on every node")
        port = _int(env, "MASTER_PORT", DEFAULT_MASTER_PORT, minimum=1)
        nodes = NodeLayout(nnodes, node_rank, master, port)
    forced = env.get("FORCE_TORCHRUN", "").strip().lower() in TRUE
    return Launch(nproc, torchrun=nproc > 1 or forced or sharded or nodes is not None, nodes=nodes)


def _int(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise LaunchError(f"{name}={raw!r} is not a whole number", f"set {name} to a number ≥ {minimum}") from None
    if value < minimum:
        raise LaunchError(f"{name}={value} is below {minimum}", f"set {name} to a number ≥ {minimum}")
    return value


def check_master(nodes: NodeLayout, timeout_s: float, waiting: Callable[[], None] = lambda: None,
                 connect: Callable[..., socket.socket] = socket.create_connection) -> None:
    """Node 0: the master address is this host's and its port is free. Other nodes: node 0 answers there within
    `timeout_s` (it may start after them). Raises LaunchError naming the address and the likely cause."""
    where = f"{nodes.master_addr}:{nodes.master_port}"
    if nodes.node_rank == 0:
        _check_listen(nodes.master_addr, nodes.master_port, where)
        return
    deadline = time.monotonic() + timeout_s
    last: OSError | None = None
    while time.monotonic() < deadline:
        try:
            connect((nodes.master_addr, nodes.master_port), timeout=min(5.0, timeout_s)).close()
            return
        except OSError as exc:
            last = exc
            waiting()
            time.sleep(min(1.0, max(deadline - time.monotonic(), 0)))
    reason = _reason(last)
    raise LaunchError(f"node {nodes.node_rank} cannot reach the master node at {where} within {timeout_s:g} s "
                      f"({reason})",
                      "start node 0 first (NODE_RANK=0), check that MASTER_ADDR is node 0's address as this node "
                      f"sees it and that port {nodes.master_port} is open between the nodes (firewall, security "
                      "group); TUNEFORGE_RENDEZVOUS_TIMEOUT_S waits longer")


def _check_listen(addr: str, port: int, where: str) -> None:
    try:
        infos = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise LaunchError(f"MASTER_ADDR {addr!r} does not resolve ({exc.strerror})",
                          "set MASTER_ADDR to node 0's IP address or a name every node resolves") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise LaunchError(f"port {port} of {where} is already in use on this node",
                                  "choose another MASTER_PORT on every node") from None
            raise LaunchError(f"this node (NODE_RANK 0) cannot listen on {where}: {_reason(exc)}",
                              "MASTER_ADDR must be an address of node 0 itself; run the NODE_RANK=0 command on "
                              "the host that has it") from None


def _reason(exc: OSError | None) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "no answer: a firewall may drop the packets"
    if exc is None:
        return "no answer"
    if exc.errno == errno.ECONNREFUSED:
        return "connection refused: nothing listens there yet"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "not an address of this host"
    if isinstance(exc, socket.gaierror):
        return f"the name does not resolve: {exc.strerror}"
    return exc.strerror or str(exc)
