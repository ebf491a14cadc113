"""bench/gpu_check.py --smoke: the GPU device check's whole pipeline on CPU (model building, synthetic data, the
worker and baseline subprocesses, measurement, the planner's estimate, table and JSON), so that the one run on a
lent GPU does not fail on something a CPU could have caught. No timing is asserted: only that figures exist."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[3]


def test_smoke_run_reports_every_row(tmp_path: Path) -> None:
    env = {**os.environ, "OUT": str(tmp_path),
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_check.py"), "--smoke", "--out", str(tmp_path)],
                            capture_output=True, text=True, cwd=REPO, env=env, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith('{"bench": "gpu_check"')]
    assert len(lines) == 1, result.stdout[-3000:]
    summary = json.loads(lines[0])
    rows = {row["key"]: row for row in summary["rows"]}

    for key in ("worker-lora-1b", "baseline-lora-1b"):
        assert rows[key]["status"] == "ok", rows[key]
        assert rows[key]["tokens_per_s"] > 0
        assert rows[key]["peak_gib"] > 0
    assert rows["worker-lora-1b"]["estimate_gib"] > 0  # the planner's figure, beside the measured one
    assert rows["worker-qlora-8b"]["status"] == "skipped: needs a CUDA GPU"

    table = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    for row in summary["rows"]:
        assert sum(row["row"] in line for line in table) == 1, row["row"]
    assert {bar["bar"] for bar in summary["bars"]} >= {"MFU, worker LoRA 8B", "QLoRA 8B peak / LoRA bf16 8B peak"}
    written = json.loads((tmp_path / "gpu_check.json").read_text(encoding="utf-8"))
    assert written["rows"] == summary["rows"]
