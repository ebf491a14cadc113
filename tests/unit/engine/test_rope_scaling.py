"""rope_scaling changes the model as transformers' RoPE types define: every type stretches positions beyond the
trained context; dynamic NTK leaves inputs within the trained context untouched, the static types do not."""

from __future__ import annotations

import pytest
import torch

from tuneforge.engine.models import load_model
from tuneforge.engine.precision import Precision
from tuneforge.modelref import ModelSource
from tuneforge.schemas import parse_training_config

TRAINED_CONTEXT = 512  # the tiny Llama's max_position_embeddings
LONG, SHORT = 700, 64


def _logits(model_dir, input_ids, **overrides) -> torch.Tensor:
    cfg = parse_training_config({
        "model_name_or_path": str(model_dir), "stage": "sft", "finetuning_type": "lora", "template": "chatml",
        "dataset": ["unused.jsonl"], "cutoff_len": 2 * TRAINED_CONTEXT, "flash_attn": "sdpa", **overrides,
    })
    model = load_model(cfg, ModelSource(str(model_dir)), Precision("fp32", "cpu"), for_training=False).eval()
    with torch.no_grad():
        return model(input_ids=input_ids).logits[0]


@pytest.fixture(scope="module")
def tokens() -> torch.Tensor:
    return torch.randint(10, 500, (1, LONG), generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def unscaled(tiny_model_dir, tokens) -> dict[str, torch.Tensor]:
    return {"long": _logits(tiny_model_dir, tokens), "short": _logits(tiny_model_dir, tokens[:, :SHORT])}


@pytest.mark.parametrize("rope_type", ["linear", "dynamic", "yarn", "llama3"])
def test_rope_scaling_changes_long_positions_as_transformers_defines(tiny_model_dir, tokens, unscaled, rope_type):
    long = _logits(tiny_model_dir, tokens, rope_scaling=rope_type)
    late = slice(TRAINED_CONTEXT, LONG)
    assert (long[late] - unscaled["long"][late]).abs().max() > 1e-4, f"{rope_type} left long inputs unchanged"
    short = _logits(tiny_model_dir, tokens[:, :SHORT], rope_scaling=rope_type)
    if rope_type == "dynamic":  # NTK rescales only once the input outgrows the trained context
        torch.testing.assert_close(short, unscaled["short"], atol=0, rtol=0)
    else:  # static rescaling (and YaRN's attention factor) applies at every length
        assert (short[1:] - unscaled["short"][1:]).abs().max() > 1e-4


def test_linear_scaling_divides_every_frequency_by_the_factor(tiny_model_dir):
    cfg = parse_training_config({
        "model_name_or_path": str(tiny_model_dir), "stage": "sft", "finetuning_type": "lora", "template": "chatml",
        "dataset": ["unused.jsonl"], "cutoff_len": 3 * TRAINED_CONTEXT, "rope_scaling": "linear",
    })
    model = load_model(cfg, ModelSource(str(tiny_model_dir)), Precision("fp32", "cpu"), for_training=False)
    head_dim = model.config.hidden_size // model.config.num_attention_heads
    plain = 1.0 / (10000.0 ** (torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim))
    torch.testing.assert_close(model.model.rotary_emb.inv_freq, plain / 3)
    assert model.config.max_position_embeddings == 3 * TRAINED_CONTEXT
