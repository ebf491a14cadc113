"""A run whose loss turns non-finite or explodes fails with a clear reason and a hint, keeping the last good weights
as a checkpoint from before the spike; with `divergence_guard: false` the same run is left alone."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.integration.engine.conftest import base_config, losses, run_in_process

# Two reliable ways to break the tiny model within 6 steps (measured): an absurd learning rate makes the gradients
# non-finite at step 2; lr 100 with full fine-tuning makes the loss jump from 6 to ~1e5 and keep rising.
NON_FINITE = {"learning_rate": 1e20, "finetuning_type": "lora"}
EXPLODING = {"learning_rate": 100.0, "finetuning_type": "full", "max_grad_norm": 1.0}
# Learns for a few steps, then explodes: plain SGD without clipping while warm-up raises the learning rate by 0.5 a
# step. One batch holds the whole data set, so every step's loss is measured on the same batch.
LEARNS_THEN_EXPLODES = {"learning_rate": 50.0, "warmup_steps": 100, "optim": "sgd", "max_grad_norm": 0,
                        "finetuning_type": "full", "per_device_train_batch_size": 6}


def checkpoint_weights(checkpoint: Path) -> dict:
    from safetensors.torch import load_file

    files = list(checkpoint.glob("*.safetensors"))
    assert files, f"no weights in {checkpoint}"
    return {name: tensor for path in files for name, tensor in load_file(path).items()}


@pytest.mark.parametrize(("breaking", "what"), [(NON_FINITE, "non-finite"), (EXPLODING, "running level")],
                         ids=["non-finite", "exploding"])
def test_a_diverging_run_fails_with_a_hint_and_keeps_a_finite_checkpoint(tmp_path, tiny_model_dir, memorise_file,
                                                                         breaking, what):
    import torch

    config = base_config(tiny_model_dir, memorise_file, tmp_path / "out", max_steps=6, cutoff_len=64,
                         save_steps=100, **breaking)
    code, events = run_in_process(tmp_path / "run", config)
    final = events[-1]
    assert code != 0 and final["type"] == "failed", final
    assert "diverged" in final["error"] and what in final["error"], final["error"]
    assert "learning_rate" in final["hint"], final["hint"]
    checkpoint = Path(final["checkpoint"])
    assert checkpoint.parent == tmp_path / "run" / "checkpoints"
    assert int(checkpoint.name.split("-")[1]) < final["step"]  # from before the spike, not the diverged weights
    weights = checkpoint_weights(checkpoint)
    assert all(torch.isfinite(t).all() for t in weights.values()), [n for n, t in weights.items()
                                                                    if not torch.isfinite(t).all()]
    assert not (tmp_path / "out" / "adapter_model.safetensors").exists()  # a failed run publishes no model


def test_without_the_guard_the_same_run_goes_on(tmp_path, tiny_model_dir, memorise_file):
    config = base_config(tiny_model_dir, memorise_file, tmp_path / "out", max_steps=6, cutoff_len=64,
                         save_steps=100, divergence_guard=False, **NON_FINITE)
    code, events = run_in_process(tmp_path / "run", config)
    assert code == 0 and events[-1]["type"] == "completed", events[-1]
    assert max(e["step"] for e in events if e["type"] == "progress") == 6


def test_the_reported_checkpoint_holds_the_weights_from_before_the_spike(tmp_path, tiny_model_dir, memorise_file):
    config = base_config(tiny_model_dir, memorise_file, tmp_path / "out", max_steps=20, cutoff_len=64,
                         save_steps=100, **LEARNS_THEN_EXPLODES)
    code, events = run_in_process(tmp_path / "run", config)
    final, curve = events[-1], losses(events)
    assert code != 0 and "diverged" in final["error"], final
    checkpoint = Path(final["checkpoint"])
    good_step = int(checkpoint.name.split("-")[1])
    # The loss logged at step n was computed with the weights after step n - 1.
    pre_spike = curve[good_step + 1]
    assert good_step >= 1 and math.isfinite(pre_spike) and pre_spike <= 1.2 * curve[1], (good_step, curve)
    assert curve[final["step"]] > 3 * pre_spike, curve

    # The engine itself measures the checkpoint's loss on the same batch: resume from it for one step.
    config = base_config(tiny_model_dir, memorise_file, tmp_path / "out-again", max_steps=good_step + 1,
                         cutoff_len=64, save_steps=100, divergence_guard=False, resume_from_checkpoint=str(checkpoint),
                         **{**LEARNS_THEN_EXPLODES, "learning_rate": 1e-6})
    code, resumed = run_in_process(tmp_path / "resumed", config)
    assert code == 0, resumed[-1]
    assert abs(losses(resumed)[good_step + 1] - pre_spike) < 1e-3 * pre_spike, (losses(resumed), pre_spike)
