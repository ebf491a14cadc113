"""The LoRA family and NEFTune each train and save: LoRA+, rsLoRA, DoRA, PiSSA, NEFTune, packing."""

from __future__ import annotations

import json

import pytest

from tests.integration.engine.conftest import base_config, losses, run_in_process


@pytest.mark.parametrize(
    ("name", "overrides", "adapter_key", "expected"),
    [
        ("lora_plus", {"loraplus_lr_ratio": 16.0}, None, None),
        ("rslora", {"use_rslora": True}, "use_rslora", True),
        ("dora", {"use_dora": True}, "use_dora", True),
        ("pissa", {"pissa_init": True, "pissa_iter": 2}, "init_lora_weights", "pissa_niter_2"),
        ("neftune", {"neftune_noise_alpha": 5.0}, None, None),
        ("packing", {"packing": True, "neat_packing": True}, None, None),
    ],
)
def test_variant_trains_and_saves(tmp_path, tiny_model_dir, memorise_file, name, overrides, adapter_key, expected):
    config = base_config(tiny_model_dir, memorise_file, tmp_path / "out", max_steps=3, **overrides)
    code, events = run_in_process(tmp_path / "run", config)
    assert code == 0 and events[-1]["type"] == "completed", events[-1]
    assert len(losses(events)) == 3
    adapter = json.loads((tmp_path / "out" / "adapter_config.json").read_text())
    if adapter_key:
        assert adapter[adapter_key] == expected


def test_loraplus_gives_b_matrices_a_higher_learning_rate(tmp_path, tiny_model_dir, memorise_file):
    """LoRA+ is real: after one step the B matrices moved ratio× further than plain LoRA's (both start at 0)."""
    from safetensors.torch import load_file

    moved = {}
    for label, ratio in (("plain", None), ("plus", 16.0)):
        config = base_config(tiny_model_dir, memorise_file, tmp_path / label, max_steps=1, loraplus_lr_ratio=ratio,
                             learning_rate=1e-3, warmup_steps=0, lr_scheduler_type="constant")
        code, _ = run_in_process(tmp_path / f"run-{label}", config)
        assert code == 0
        weights = load_file(tmp_path / label / "adapter_model.safetensors")
        moved[label] = sum(float(w.abs().sum()) for k, w in weights.items() if "lora_B" in k)
    assert moved["plus"] > 5 * moved["plain"] > 0, moved
