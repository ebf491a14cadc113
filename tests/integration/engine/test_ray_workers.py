"""Two Ray Train workers on a real local Ray cluster (scripts/ray.sh), started by `tuneforge train` from a config
with LLaMA-Factory's Ray keys: the Ray driver, the workers in Ray's actors. Two workers with per-device batch 2
train like one process with batch 4 (stop, a lost worker and resume: tests/integration/service/test_ray_tasks.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.fixtures.ray_cluster import worker_pids
from tests.integration.engine.conftest import base_config, losses, run_in_process
from tuneforge.rundir import read_events

pytestmark = pytest.mark.slow

SAMPLES = [(f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}.") for a in range(4) for b in range(4)]


@pytest.fixture()
def sums_file(tmp_path: Path) -> Path:
    import json

    path = tmp_path / "sums.jsonl"
    path.write_text("".join(json.dumps({"instruction": q, "input": "", "output": a}) + "\n" for q, a in SAMPLES))
    return path


def ray_config(config: dict, workers: int = 2) -> dict:
    return {**config, "ray_num_workers": workers, "resources_per_worker": {"CPU": 1}}


@pytest.fixture(autouse=True)
def _cluster(ray_address: str) -> None:
    """Every test here needs the cluster (skipped, or failed under TUNEFORGE_REQUIRE_RAY, without it)."""


def start_train(run_path: Path, config: dict) -> subprocess.Popen:
    """`tuneforge train config.yaml` (its run directory is the output folder, as LLaMA-Factory keeps it)."""
    run_path.mkdir(parents=True)
    (run_path / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    env = {**os.environ, "TUNEFORGE_RAY_ADDRESS": os.environ["TUNEFORGE_TEST_RAY_ADDRESS"]}
    with (run_path / "worker.out").open("ab") as output:
        return subprocess.Popen([sys.executable, "-m", "tuneforge.cli.main", "train", "config.yaml"], stdout=output,
                                stderr=subprocess.STDOUT, env=env, cwd=run_path, start_new_session=True)


def finish(driver: subprocess.Popen, run_path: Path, timeout: float = 240) -> int:
    try:
        return driver.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
        pytest.fail(f"the Ray driver did not finish within {timeout} s\n{output(run_path)}")


def output(run_path: Path) -> str:
    return (run_path / "worker.out").read_text(errors="replace")[-4000:]


def test_two_ray_workers_train_like_one_process_with_the_same_global_batch(tmp_path, tiny_model_dir, sums_file):
    config = base_config(tiny_model_dir, sums_file, tmp_path / "ray-out", max_steps=-1, num_train_epochs=3,
                         per_device_train_batch_size=2, save_steps=1000)
    driver = start_train(tmp_path / "ray", ray_config(config))
    reference_config = {**config, "per_device_train_batch_size": 4, "output_dir": str(tmp_path / "one-out")}
    code, reference = run_in_process(tmp_path / "one", reference_config)
    assert code == 0, reference[-1]

    assert finish(driver, tmp_path / "ray") == 0, output(tmp_path / "ray")
    out = tmp_path / "ray-out"  # tuneforge train's run directory
    events = read_events(out / "events.jsonl")
    assert [e["type"] for e in events].count("completed") == 1 and events[-1]["type"] == "completed"
    assert set(worker_pids(out)) == {0, 1}  # two Ray workers, each its own process
    assert len(set(worker_pids(out).values())) == 2
    curve, reference_curve = losses(events), losses(reference)
    assert sorted(curve) == sorted(reference_curve) and len(curve) == len(SAMPLES) // 4 * 3
    for step, loss in curve.items():  # all-reduced gradients over Ray's process group: the same optimisation
        assert loss == pytest.approx(reference_curve[step], rel=1e-4), (step, curve, reference_curve)
    assert (out / "adapter_model.safetensors").is_file()
