"""QLoRA's bitsandbytes config follows quantization_type and double_quantization (built without CUDA)."""

from __future__ import annotations

import pytest
import torch

from tuneforge.engine.models import bnb_config
from tuneforge.engine.precision import Precision
from tuneforge.schemas import parse_training_config


def _cfg(**overrides):
    return parse_training_config({"model_name_or_path": "tiny", "stage": "sft", "finetuning_type": "lora",
                                  "template": "chatml", "dataset": ["unused.jsonl"], "quantization_bit": 4,
                                  **overrides})


@pytest.mark.parametrize(("quant_type", "double"), [("nf4", True), ("fp4", False), ("nf4", False), ("fp4", True)])
def test_4bit_config_follows_the_settings(quant_type, double):
    config = bnb_config(_cfg(quantization_type=quant_type, double_quantization=double), Precision("bf16", "cuda"))
    assert config.load_in_4bit and config.bnb_4bit_quant_type == quant_type
    assert config.bnb_4bit_use_double_quant is double
    assert config.bnb_4bit_compute_dtype == torch.bfloat16


def test_8bit_config():
    config = bnb_config(_cfg(quantization_bit=8), Precision("fp16", "cuda"))
    assert config.load_in_8bit and not config.load_in_4bit
