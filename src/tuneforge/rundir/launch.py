"""How a worker is started: the argument list and the environment, for one process or N under torchrun (DDP).

Pure and torch-free: the service builds these and starts the process; nothing here runs anything.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

WORKER_MODULE = "tuneforge.engine.run"
# torchrun waits this long after a SIGTERM before it SIGKILLs the ranks (its own default is 30 s, less than a large
# model needs to finish a step and save). The service's own stop grace period decides when a stop has failed.
SHUTDOWN_TIMEOUT_S = 3600


def worker_command(run_dir: Path, nproc: int, python: str = sys.executable, *, sharded: bool = False) -> list[str]:
    """`python -m tuneforge.engine.run RUN_DIR`, or the same under `torchrun --standalone --nproc_per_node N`.

    --standalone gives each launch its own rendezvous on a free port, so two multi-process runs on one host do not
    collide. Rank 0 writes the events; every rank trains its shard of each batch. A `sharded` run (DeepSpeed,
    FSDP) starts under torchrun even on one device: both need a process group.
    """
    if nproc < 1:
        raise ValueError(f"nproc: {nproc}, but a worker needs at least 1 process")
    worker = ["-m", WORKER_MODULE, str(run_dir)]
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
