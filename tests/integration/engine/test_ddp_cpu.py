"""Two worker processes under torchrun on a CPU host (gloo), launched as the service launches them.

Two ranks with per-device batch 2 must train exactly like one process with batch 4: the same samples per step,
the same loss at every step (the gradients are all-reduced), the same total steps and token counts, one report.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from tests.integration.engine.conftest import base_config, losses, run_in_process
from tuneforge.rundir import RunDir, read_events
from tuneforge.rundir.launch import worker_command, worker_environment
from tuneforge.schemas.run_spec import RunSpec

pytestmark = pytest.mark.slow

EPOCHS = 5
SAMPLES = [(f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}.") for a in range(4) for b in range(4)]
STOP_LINE = re.compile(r"stop requested: saving a checkpoint at step (\d+)")


@pytest.fixture()
def sums_file(tmp_path: Path) -> Path:
    path = tmp_path / "sums.jsonl"
    path.write_text("".join(json.dumps({"instruction": q, "input": "", "output": a}) + "\n" for q, a in SAMPLES))
    return path


def launch_two_ranks(run_path: Path, config: dict) -> subprocess.Popen:
    run_dir = RunDir(run_path).create(RunSpec(config=config))
    env = worker_environment(dict(os.environ), [0, 1], "cpu", 1)
    with (run_path / "worker.out").open("wb") as output:
        return subprocess.Popen(worker_command(run_dir.path, 2), stdout=output, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)


# Only a guard against a hung collective: a finished run ends the wait at once, and a loaded machine is slow.
HANG_S = 600


def finish(worker: subprocess.Popen, run_path: Path, timeout: float = HANG_S) -> int:
    try:
        return worker.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        output = (run_path / "worker.out").read_text(errors="replace")[-3000:]
        pytest.fail(f"torchrun did not finish within {timeout} s (hung collective?)\n{output}")


def wait_for_progress(worker: subprocess.Popen, run_path: Path) -> None:
    deadline = time.monotonic() + HANG_S
    while not any(e["type"] == "progress" for e in read_events(run_path / "events.jsonl")):
        assert worker.poll() is None, (run_path / "worker.out").read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, f"no progress within {HANG_S} s"
        time.sleep(0.1)


def stop_steps(run_path: Path) -> dict[str, int]:
    """The step at which each rank's log says it stopped."""
    found = {}
    for name in ("train.log", "train.rank1.log"):
        match = STOP_LINE.search((run_path / name).read_text())
        assert match, f"{name} does not say where it stopped"
        found[name] = int(match.group(1))
    return found


def test_two_ranks_train_like_one_process_with_the_same_global_batch(tmp_path, tiny_model_dir, sums_file):
    config = base_config(tiny_model_dir, sums_file, tmp_path / "ddp-out", max_steps=-1, num_train_epochs=EPOCHS,
                         per_device_train_batch_size=2, save_steps=1000)
    worker = launch_two_ranks(tmp_path / "ddp", config)
    reference_config = {**config, "per_device_train_batch_size": 4, "output_dir": str(tmp_path / "one-out")}
    code, reference = run_in_process(tmp_path / "one", reference_config)
    assert code == 0, reference[-1]

    assert finish(worker, tmp_path / "ddp") == 0, (tmp_path / "ddp" / "worker.out").read_text()[-3000:]
    events = read_events(tmp_path / "ddp" / "events.jsonl")
    types = [e["type"] for e in events]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))  # one writer: no seq twice
    assert types.count("started") == 1 and types.count("completed") == 1 and types[-1] == "completed"

    # Global batch 2 ranks × 2 = 4: 4 steps an epoch, half of the 8 one process takes with per-device batch 2.
    single_process_steps = len(SAMPLES) // 2 * EPOCHS
    assert events[0]["total_steps"] == single_process_steps // 2 == reference[0]["total_steps"]
    curve, reference_curve = losses(events), losses(reference)
    assert sorted(curve) == list(range(1, single_process_steps // 2 + 1))
    for step, loss in curve.items():  # all-reduced gradients: the very same optimisation as one process
        assert loss == pytest.approx(reference_curve[step], rel=1e-4), (step, curve, reference_curve)
    assert sum(list(curve.values())[-3:]) < sum(list(curve.values())[:3])

    last, reference_last = (
        [e for e in evs if e["type"] == "progress"][-1] for evs in (events, reference))
    assert last["tokens_seen"] == reference_last["tokens_seen"]  # both ranks' tokens, not rank 0's shard
    assert last["trained_tokens"] == reference_last["trained_tokens"]
    assert events[-1]["metrics"]["tokens_seen"] == reference[-1]["metrics"]["tokens_seen"]

    run = tmp_path / "ddp"
    assert (run / "train.rank1.log").stat().st_size > 0
    assert len((run / "trainer_log.jsonl").read_text().splitlines()) == len(curve)  # written by rank 0 alone
    assert [p.name for p in (run / "checkpoints").iterdir()] == [f"checkpoint-{len(curve)}"]
    assert (tmp_path / "ddp-out" / "adapter_model.safetensors").is_file()


def test_sigterm_to_the_process_group_stops_every_rank_at_one_step(tmp_path, tiny_model_dir, sums_file):
    """What the service's stop does (killpg). torchrun itself then exits 1: it re-raises the signal it got after
    its ranks ended; the stopped event is the outcome."""
    config = base_config(tiny_model_dir, sums_file, tmp_path / "out", max_steps=100000, save_steps=100000)
    worker = launch_two_ranks(tmp_path / "run", config)
    wait_for_progress(worker, tmp_path / "run")
    os.killpg(worker.pid, signal.SIGTERM)
    finish(worker, tmp_path / "run")

    events = read_events(tmp_path / "run" / "events.jsonl")
    final = events[-1]
    assert final["type"] == "stopped" and sum(e["type"] in ("completed", "failed", "stopped") for e in events) == 1
    assert final["checkpoint"].endswith(f"checkpoint-{final['step']}")
    assert (Path(final["checkpoint"]) / "adapter_model.safetensors").is_file()
    assert set(stop_steps(tmp_path / "run").values()) == {final["step"]}


def test_a_stop_that_reaches_one_rank_stops_both_and_torchrun_exits_0(tmp_path, tiny_model_dir, sums_file):
    config = base_config(tiny_model_dir, sums_file, tmp_path / "out", max_steps=100000, save_steps=100000)
    worker = launch_two_ranks(tmp_path / "run", config)
    wait_for_progress(worker, tmp_path / "run")
    ranks = {int(p.environ().get("RANK", "-1")): p for p in psutil.Process(worker.pid).children()}
    ranks[1].send_signal(signal.SIGTERM)  # rank 0 never hears of it but must stop at the same step

    assert finish(worker, tmp_path / "run") == 0
    final = read_events(tmp_path / "run" / "events.jsonl")[-1]
    assert final["type"] == "stopped" and (Path(final["checkpoint"]) / "adapter_model.safetensors").is_file()
    assert set(stop_steps(tmp_path / "run").values()) == {final["step"]}
