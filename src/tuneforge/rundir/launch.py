"""How a worker is started: the argument list and the environment, for one process or N under torchrun (DDP).

Pure and torch-free: the service builds these and starts the process; nothing here runs anything.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

WORKER_MODULE = "tuneforge.engine.run"
# torchrun waits this long after a SIGTERM before it SIGKILLs the ranks (its own default is 30 s, less than a large
# model needs to finish a step and save). The service's own stop grace period decides when a stop has failed.
SHUTDOWN_TIMEOUT_S = 3600


@dataclass(frozen=True)
class NodeLayout:
    """Several hosts training one run (torchrun's static rendezvous): every node starts the same command with its
    own node_rank; node 0 listens on master_addr:master_port."""

    nnodes: int
    node_rank: int
    master_addr: str
    master_port: int


def worker_command(run_dir: Path, nproc: int, python: str = sys.executable, *, sharded: bool = False,
                   nodes: NodeLayout | None = None) -> list[str]:
    """`python -m tuneforge.engine.run RUN_DIR`, or the same under `torchrun --standalone --nproc_per_node N`.

    --standalone gives each launch its own rendezvous on a free port, so two multi-process runs on one host do not
    collide. Rank 0 writes the events; every rank trains its shard of each batch. A `sharded` run (DeepSpeed,
    FSDP) starts under torchrun even on one device: both need a process group. With `nodes`, the ranks of this node
    join the other nodes' at the master's address.
    """
    if nproc < 1:
        raise ValueError(f"nproc: {nproc}, but a worker needs at least 1 process")
    worker = ["-m", WORKER_MODULE, str(run_dir)]
    if nodes is not None and nodes.nnodes > 1:
        return [python, "-m", "torch.distributed.run", "--nnodes", str(nodes.nnodes), "--node_rank",
                str(nodes.node_rank), "--master_addr", nodes.master_addr, "--master_port", str(nodes.master_port),
                "--nproc_per_node", str(nproc), *worker]
    if nproc == 1 and not sharded:
        return [python, *worker]
    return [python, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), *worker]


def worker_environment(base: dict[str, str], devices: list[int], kind: Literal["cuda", "cpu"],
                       threads_per_process: int | None) -> dict[str, str]:
    """The environment of a worker: `base` (not changed) plus the devices it may use and its thread count.

    cuda: CUDA_VISIBLE_DEVICES lists the allocated GPUs, so rank k uses the k-th of them. cpu: CUDA_VISIBLE_DEVICES
    is empty (a GPU on the host stays untouched) and OMP_NUM_THREADS keeps N processes from oversubscribing the
    cores; without it torchrun forces 1 thread per process.
    """
    if kind not in ("cuda", "cpu"):
        raise ValueError(f"kind: {kind!r}, expected 'cuda' or 'cpu'")
    if kind == "cuda" and not devices:
        raise ValueError("devices: empty, but a cuda worker needs at least one GPU index")
    if any(d < 0 for d in devices):
        raise ValueError(f"devices: {devices}, GPU indices start at 0")
    if threads_per_process is not None and threads_per_process < 1:
        raise ValueError(f"threads_per_process: {threads_per_process}, expected 1 or more (or None to leave it)")
    env = dict(base)
    env["CUDA_VISIBLE_DEVICES"] = ",".join(str(d) for d in devices) if kind == "cuda" else ""
    env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # the numbering NVML (the inventory) uses; CUDA's default differs
    if threads_per_process is not None:
        env["OMP_NUM_THREADS"] = str(threads_per_process)
    env["TOKENIZERS_PARALLELISM"] = "false"  # the tokenizers' own thread pool would fight the ranks for cores
    env.setdefault("TORCH_ELASTIC_SHUTDOWN_TIMEOUT", str(SHUTDOWN_TIMEOUT_S))
    return env
