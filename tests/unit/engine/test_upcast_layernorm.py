"""upcast_layernorm: in a bf16 model the normalisation weights are kept in float32, everything else stays bf16, and
the model still runs without autocast (pure bf16)."""

from __future__ import annotations

import pytest
import torch

from tuneforge.engine.adapters import prepare_trainable_model
from tuneforge.engine.models import load_model
from tuneforge.engine.precision import Precision
from tuneforge.modelref import ModelSource
from tuneforge.schemas import parse_training_config


def _prepared(model_dir, precision, **overrides):
    cfg = parse_training_config({"model_name_or_path": str(model_dir), "stage": "sft", "template": "chatml",
                                 "dataset": ["unused.jsonl"], "lora_target": ["all"], "flash_attn": "sdpa",
                                 "freeze_trainable_modules": ["mlp"], **overrides})
    model = load_model(cfg, ModelSource(str(model_dir)), Precision(precision, "cpu"))
    return prepare_trainable_model(model, cfg)


@pytest.mark.parametrize(("finetuning_type", "precision", "flags"), [
    ("lora", "bf16", {"bf16": True}), ("lora", "pure_bf16", {"pure_bf16": True}),
    ("freeze", "pure_bf16", {"pure_bf16": True}),
])
def test_norm_weights_are_float32_and_the_frozen_rest_stays_bf16(tiny_model_dir, finetuning_type, precision, flags):
    model = _prepared(tiny_model_dir, precision, finetuning_type=finetuning_type, upcast_layernorm=True, **flags)
    params = dict(model.named_parameters())
    norms = {name for name in params if "norm" in name}
    assert norms and all(params[name].dtype == torch.float32 for name in norms)
    frozen = {name: p.dtype for name, p in params.items() if name not in norms and not p.requires_grad}
    assert frozen and set(frozen.values()) == {torch.bfloat16}, frozen
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([[5, 6, 7, 8]])).logits
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits).all()


def test_without_the_setting_norms_stay_bf16(tiny_model_dir):
    model = _prepared(tiny_model_dir, "pure_bf16", finetuning_type="lora", pure_bf16=True)
    assert all(p.dtype == torch.bfloat16 for name, p in model.named_parameters() if "norm" in name)
