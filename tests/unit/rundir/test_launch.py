"""The command and environment the service starts a worker with: one process, or N under torchrun."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tuneforge.rundir.launch import worker_command, worker_environment


def test_one_process_runs_the_worker_module_directly(tmp_path: Path) -> None:
    assert worker_command(tmp_path, 1, "/py") == ["/py", "-m", "tuneforge.engine.run", str(tmp_path)]


def test_several_processes_run_under_torchrun_standalone(tmp_path: Path) -> None:
    command = worker_command(tmp_path, 2)
    assert command == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                       "-m", "tuneforge.engine.run", str(tmp_path)]


def test_a_sharded_run_starts_under_torchrun_even_on_one_device(tmp_path: Path) -> None:
    """DeepSpeed and FSDP need a process group, which torchrun sets up."""
    assert worker_command(tmp_path, 1, "/py", sharded=True)[:6] == [
        "/py", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1"]


def test_zero_processes_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nproc: 0"):
        worker_command(tmp_path, 0)


def test_cpu_hides_gpus_and_sets_threads_per_process() -> None:
    base = {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    env = worker_environment(base, [0, 1], "cpu", 1)
    assert env["CUDA_VISIBLE_DEVICES"] == "" and env["OMP_NUM_THREADS"] == "1"
    assert env["TOKENIZERS_PARALLELISM"] == "false" and env["PATH"] == "/bin"
    assert base == {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}  # the caller's dict is left alone


def test_cuda_lists_the_allocated_gpus() -> None:
    env = worker_environment({"OMP_NUM_THREADS": "8"}, [2, 5], "cuda", None)
    assert env["CUDA_VISIBLE_DEVICES"] == "2,5"
    assert env["OMP_NUM_THREADS"] == "8"  # None leaves the inherited value


def test_torchrun_waits_for_a_graceful_stop_longer_than_its_default() -> None:
    assert int(worker_environment({}, [0], "cuda", None)["TORCH_ELASTIC_SHUTDOWN_TIMEOUT"]) > 30
    env = worker_environment({"TORCH_ELASTIC_SHUTDOWN_TIMEOUT": "90"}, [0], "cuda", None)
    assert env["TORCH_ELASTIC_SHUTDOWN_TIMEOUT"] == "90"


@pytest.mark.parametrize(("devices", "kind", "threads", "field"), [
    ([], "cuda", None, "devices"),
    ([-1], "cuda", None, "devices"),
    ([0], "cpu", 0, "threads_per_process"),
    ([0], "tpu", None, "kind"),
])
def test_bad_arguments_name_the_field(devices: list[int], kind: str, threads: int | None, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        worker_environment({}, devices, kind, threads)  # type: ignore[arg-type]
