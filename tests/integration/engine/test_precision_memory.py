"""LoRA in bf16 keeps the frozen weights in bf16 (half the memory) and the trainable ones in fp32, and still learns."""

from __future__ import annotations

import json

from tests.integration.engine.conftest import base_config, losses, run_in_process


def test_bf16_lora_trains_with_half_precision_frozen_weights(tmp_path, tiny_model_dir, memorise_file):
    import torch

    from tuneforge.engine.adapters import prepare_trainable_model
    from tuneforge.engine.models import load_model, resolve_model_source
    from tuneforge.engine.precision import Precision
    from tuneforge.schemas import parse_training_config

    config = base_config(tiny_model_dir, memorise_file, tmp_path / "out", bf16=True, max_steps=20)
    cfg = parse_training_config(config)
    loaded = load_model(cfg, resolve_model_source(str(tiny_model_dir)), Precision("bf16", "cpu"))
    model = prepare_trainable_model(loaded, cfg)
    dtypes = {(p.requires_grad, p.dtype) for p in model.parameters()}
    assert dtypes == {(False, torch.bfloat16), (True, torch.float32)}, dtypes

    code, events = run_in_process(tmp_path / "run", config)
    assert code == 0, events[-1]
    curve = list(losses(events).values())
    assert curve[-1] < curve[0], curve
    assert json.loads((tmp_path / "out" / "adapter_config.json").read_text())["r"] == 8
