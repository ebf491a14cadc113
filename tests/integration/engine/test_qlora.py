"""QLoRA through the worker, on this CPU: bitsandbytes 0.50 quantizes on CPUs too, so the whole path —
the quantization config, loading onto the rank's device, the k-bit preparation, LoRA on 4-bit layers, saving —
runs here as it runs on a GPU."""

from __future__ import annotations

import pytest
import torch

from tests.integration.engine.conftest import base_config, losses, run_in_process
from tuneforge.engine.adapters import prepare_trainable_model
from tuneforge.engine.models import ModelSource, load_model
from tuneforge.engine.precision import Precision
from tuneforge.schemas import parse_training_config

pytest.importorskip("bitsandbytes", reason="QLoRA needs bitsandbytes (in the dev extra)")
pytestmark = pytest.mark.slow


def _load(model_dir, precision=Precision("fp32", "cpu"), **settings):
    cfg = parse_training_config({"model_name_or_path": str(model_dir), "dataset": ["unused.jsonl"],
                                 "finetuning_type": "lora", "lora_target": ["all"], **settings})
    return load_model(cfg, ModelSource(str(model_dir)), precision), cfg


def _quantized_layer(model):
    return model.model.layers[0].self_attn.q_proj


def test_qlora_4bit_trains_and_its_adapter_fits_the_unquantized_base(tmp_path, tiny_model_dir, memorise_file):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    config = base_config(tiny_model_dir, memorise_file, tmp_path / "out", quantization_bit=4, max_steps=20,
                         gradient_checkpointing=True)
    code, events = run_in_process(tmp_path / "run", config)
    assert code == 0, events[-1]
    curve = list(losses(events).values())
    assert sum(curve[-3:]) < sum(curve[:3]), curve
    started = next(e for e in events if e["type"] == "started")
    assert started["trainable_params"] < started["total_params"] / 4  # the adapters alone

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        before = base(input_ids=ids).logits
        tuned = PeftModel.from_pretrained(base, tmp_path / "out").eval()
        after = tuned(input_ids=ids).logits
    assert not torch.allclose(before, after, atol=1e-4)  # the adapter learnt something, and loads on fp32 weights


def test_quantization_type_and_double_quantization_reach_the_weights(tiny_model_dir):
    nf4, _ = _load(tiny_model_dir, quantization_bit=4)
    fp4, _ = _load(tiny_model_dir, quantization_bit=4, quantization_type="fp4", double_quantization=False)
    assert type(_quantized_layer(nf4)).__name__ == "Linear4bit"
    assert _quantized_layer(nf4).weight.quant_state.quant_type == "nf4"
    assert _quantized_layer(nf4).weight.quant_state.nested  # double quantization: the scales are quantized too
    assert _quantized_layer(fp4).weight.quant_state.quant_type == "fp4"
    assert not _quantized_layer(fp4).weight.quant_state.nested
    eight, _ = _load(tiny_model_dir, quantization_bit=8)
    assert type(_quantized_layer(eight)).__name__ == "Linear8bitLt"


def test_kbit_preparation_keeps_embeddings_in_the_compute_dtype(tiny_model_dir):
    """peft's own preparation would turn every non-quantized weight to fp32; ours leaves them as loaded."""
    model, cfg = _load(tiny_model_dir, Precision("bf16", "cpu"), quantization_bit=4, compute_type="bf16")
    assert model.get_input_embeddings().weight.dtype == torch.bfloat16
    model = prepare_trainable_model(model, cfg)
    assert model.get_input_embeddings().weight.dtype == torch.bfloat16
    assert model.get_output_embeddings().weight.dtype == torch.bfloat16
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
