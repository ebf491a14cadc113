"""What a user watches: a readable train.log line per logging step, and a final loss even for very short runs."""

from __future__ import annotations

import math
import re
import subprocess
import sys

from tests.integration.engine.conftest import base_config, run_in_process
from tuneforge.rundir import RunDir, read_events
from tuneforge.schemas.run_spec import RunSpec

STEP_LINE = re.compile(
    r"step (\d+)/(\d+) loss (\d+\.\d{4}) lr (\S+) grad_norm (\S+) tokens/s (\d+) eta (\d+:\d\d:\d\d)$")


def test_train_log_has_one_readable_line_per_logging_step(tmp_path, tiny_model_dir, memorise_file):
    config = base_config(tiny_model_dir, memorise_file, tmp_path / "out", max_steps=3, logging_steps=1)
    run_dir = RunDir(tmp_path / "run").create(RunSpec(config=config))
    worker = subprocess.run([sys.executable, "-m", "tuneforge.engine.run", str(run_dir.path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    assert worker.returncode == 0, run_dir.tail_log()
    matches = [STEP_LINE.search(line) for line in run_dir.log_file.read_text(encoding="utf-8").splitlines()]
    steps = [m.groups() for m in matches if m]
    assert [(int(step), int(total)) for step, total, *_ in steps] == [(1, 3), (2, 3), (3, 3)], steps
    progress = [e for e in read_events(run_dir.events_file) if e["type"] == "progress"]
    for (_, _, loss, lr, _, _, _), event in zip(steps, progress, strict=True):
        assert float(loss) == round(event["loss"], 4) and float(lr) == float(f"{event['learning_rate']:.1e}")


def test_a_run_shorter_than_logging_steps_still_reports_its_loss_and_tokens(tmp_path, tiny_model_dir, memorise_file):
    config = base_config(tiny_model_dir, memorise_file, tmp_path / "out", max_steps=2, logging_steps=10)
    code, events = run_in_process(tmp_path / "run", config)
    assert code == 0 and events[-1]["type"] == "completed", events[-1]
    progress = [e for e in events if e["type"] == "progress"]
    assert progress, "no progress event"
    last = progress[-1]
    assert last["step"] == 2 and last["percentage"] == 100
    assert last["loss"] is not None and math.isfinite(last["loss"]) and last["loss"] > 0
    assert last["tokens_seen"] > 0 and last["trained_tokens"] > 0
    trainer_log = (tmp_path / "run" / "trainer_log.jsonl").read_text().splitlines()
    assert len(trainer_log) == 1 and '"current_steps": 2' in trainer_log[0]
