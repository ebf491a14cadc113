"""The worker trains for real on a tiny random Llama: loss falls, checkpoints rotate, stop and resume work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.engine.conftest import StopAtStep, base_config, losses, run_in_process
from tuneforge.rundir import RunDir, read_events
from tuneforge.schemas.run_spec import RunSpec


def test_loss_falls_on_a_memorisation_set(tmp_path, tiny_model_dir, memorise_file):
    config = base_config(tiny_model_dir, memorise_file, tmp_path / "out", max_steps=30, val_size=2, plot_loss=True,
                         finetuning_type="full", learning_rate=3e-3)
    code, events = run_in_process(tmp_path / "run", config)
    assert code == 0, events[-1]
    curve = list(losses(events).values())
    assert sum(curve[-3:]) / 3 < 0.5 * sum(curve[:3]) / 3, curve
    types = [e["type"] for e in events]
    assert types[0] == "started" and types[-1] == "completed" and types.count("completed") == 1
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    progress = [e for e in events if e["type"] == "progress"]
    assert progress[-1]["step"] == 30 and progress[-1]["tokens_seen"] > 0 and progress[-1]["eta_s"] == 0
    out = tmp_path / "out"
    assert (out / "model.safetensors").is_file() and (out / "tokenizer_config.json").is_file()
    assert "<|im_start|>" in (out / "chat_template.jinja").read_text() or "im_start" in json.dumps(
        json.loads((out / "tokenizer_config.json").read_text()))
    assert (out / "training_loss.png").is_file() and (out / "README.md").read_text().count("train_loss")
    log_lines = [json.loads(x) for x in (tmp_path / "run" / "trainer_log.jsonl").read_text().splitlines()]
    assert {"current_steps", "total_steps", "loss", "lr", "epoch", "percentage", "elapsed_time",
            "remaining_time"} <= set(log_lines[0])
    assert events[-1]["metrics"]["eval_loss"] > 0


def test_checkpoints_rotate(tmp_path, tiny_model_dir, memorise_file):
    config = base_config(tiny_model_dir, memorise_file, tmp_path / "out", max_steps=8, save_steps=2,
                         save_total_limit=2)
    code, events = run_in_process(tmp_path / "run", config)
    assert code == 0
    kept = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert kept == ["checkpoint-6", "checkpoint-8"]
    assert [e["step"] for e in events if e["type"] == "checkpoint"] == [2, 4, 6, 8]


def test_resume_reproduces_the_uninterrupted_loss_curve(tmp_path, tiny_model_dir, memorise_file):
    config = base_config(tiny_model_dir, memorise_file, tmp_path / "full-out", max_steps=10, save_steps=100)
    _, full = run_in_process(tmp_path / "full", config)

    config = base_config(tiny_model_dir, memorise_file, tmp_path / "part-out", max_steps=10, save_steps=100)
    code, first = run_in_process(tmp_path / "part", config, stop=StopAtStep(4))
    assert code == 0 and first[-1]["type"] == "stopped" and first[-1]["step"] == 4
    assert Path(first[-1]["checkpoint"]).name == "checkpoint-4"
    config["resume_from_checkpoint"] = "last"
    code, resumed = run_in_process(tmp_path / "part", config)
    assert code == 0 and resumed[-1]["type"] == "completed"
    full_curve, resumed_curve = losses(full), losses(resumed)
    assert set(range(5, 11)) <= set(resumed_curve)
    for step in range(5, 11):
        assert abs(full_curve[step] - resumed_curve[step]) < 1e-3 * max(1.0, full_curve[step]), (step, full_curve,
                                                                                                  resumed_curve)


def test_sigterm_saves_a_checkpoint_and_reports_stopped(tmp_path, tiny_model_dir, memorise_file):
    config = base_config(tiny_model_dir, memorise_file, tmp_path / "out", max_steps=100000, save_steps=100000)
    run_dir = RunDir(tmp_path / "run").create(RunSpec(config=config))
    worker = subprocess.Popen([sys.executable, "-m", "tuneforge.engine.run", str(run_dir.path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300  # only a guard against a hang: the first step ends the wait
    while not any(e["type"] == "progress" for e in read_events(run_dir.events_file)):
        assert worker.poll() is None, run_dir.tail_log()
        assert time.monotonic() < deadline, "no progress within 300 s"
        time.sleep(0.2)
    os.kill(worker.pid, signal.SIGTERM)
    assert worker.wait(timeout=300) == 0
    events = read_events(run_dir.events_file)
    final = events[-1]
    assert final["type"] == "stopped" and sum(e["type"] in ("completed", "failed", "stopped") for e in events) == 1
    assert (Path(final["checkpoint"]) / "adapter_model.safetensors").is_file()
    assert final["checkpoint"].endswith(f"checkpoint-{final['step']}")
