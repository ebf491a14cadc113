"""The padding-free path's attention gives the padded path's logits and gradients, and auto picks the fastest
correct kernel the host has: FlashAttention-2's varlen kernel on a recent GPU with flash-attn, else varlen SDPA."""

from __future__ import annotations

import pytest
import torch

from tests.fixtures.tiny import build_tiny_llama
from tuneforge.engine.batching import PaddingFreeCollator
from tuneforge.engine.models import attention_implementation
from tuneforge.engine.precision import Precision
from tuneforge.engine.varlen_attention import register

TEXTS = ["Who are you? I am Forge, made by tuneforge.", "Name a number. 7 8 9 10",
         "What is the capital of France? The capital of France is Paris, a city on the Seine."]


def _packed_and_padded():
    model, tokenizer = build_tiny_llama(seed=5)
    samples = [tokenizer.encode(text) for text in TEXTS]
    packed = PaddingFreeCollator()([{"input_ids": s, "labels": s} for s in samples])
    longest = max(map(len, samples))
    pad = tokenizer.pad_token_id
    padded_ids = torch.tensor([s + [pad] * (longest - len(s)) for s in samples])
    mask = torch.tensor([[1] * len(s) + [0] * (longest - len(s)) for s in samples])
    return model, samples, packed, padded_ids, mask


def _run(model, implementation: str, **inputs):
    model.set_attn_implementation(implementation)
    model.zero_grad()
    logits = model(**inputs, use_cache=False).logits
    return logits


def test_varlen_logits_and_gradients_equal_the_padded_paths():
    model, samples, packed, padded_ids, mask = _packed_and_padded()
    model.train()  # dropout is 0 in the tiny config: train mode only matters for the kernels' own branches
    varlen = _run(model, register(), input_ids=packed["input_ids"], position_ids=packed["position_ids"])[0]
    varlen.float().logsumexp(-1).sum().backward()
    varlen_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    padded = _run(model, "sdpa", input_ids=padded_ids, attention_mask=mask)
    start = 0
    pieces = []
    for row, sample in enumerate(samples):
        torch.testing.assert_close(varlen[start:start + len(sample)], padded[row, :len(sample)], atol=1e-5,
                                   rtol=1e-4)
        pieces.append(padded[row, :len(sample)])
        start += len(sample)
    torch.cat(pieces).float().logsumexp(-1).sum().backward()
    assert varlen_grads
    for name, param in model.named_parameters():
        torch.testing.assert_close(varlen_grads[name], param.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_without_sample_boundaries_the_packed_row_would_differ():
    """The check above can fail: one causal span over the whole row lets later samples see earlier ones."""
    model, samples, packed, padded_ids, mask = _packed_and_padded()
    model.eval()
    with torch.no_grad():
        leaky = _run(model, register(), input_ids=packed["input_ids"])[0]
        padded = _run(model, "sdpa", input_ids=padded_ids, attention_mask=mask)
    first = len(samples[0])
    assert not torch.allclose(leaky[first:first + len(samples[1])], padded[1, :len(samples[1])], atol=1e-3)


@pytest.mark.parametrize(("precision", "capability", "installed", "expected"), [
    (Precision("bf16", "cuda"), (9, 0), True, "flash_attention_2"),
    (Precision("fp16", "cuda"), (8, 0), True, "flash_attention_2"),
    (Precision("fp16", "cuda"), (7, 5), True, "tuneforge_varlen"),  # Turing: flash-attn 2 does not run there
    (Precision("fp32", "cuda"), (9, 0), True, "tuneforge_varlen"),  # flash-attn has no fp32 kernel
    (Precision("bf16", "cuda"), (9, 0), False, "tuneforge_varlen"),
    (Precision("fp32", "cpu"), None, True, "tuneforge_varlen"),
])
def test_auto_picks_flash_attention_where_it_runs(monkeypatch, precision, capability, installed, expected):
    import transformers.utils

    monkeypatch.setattr(transformers.utils, "is_flash_attn_2_available", lambda: installed)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: capability)
    assert attention_implementation("auto", None, 512, True, precision) == expected
    assert attention_implementation("auto", None, 512, False, precision) == "sdpa"  # padded batches, sampling


def test_a_model_without_flash_attention_falls_back_to_varlen_sdpa_under_auto():
    from tuneforge.engine.models import _from_pretrained

    class NoFlash:
        @staticmethod
        def from_pretrained(path, attn_implementation, **kwargs):
            if attn_implementation == "flash_attention_2":
                raise ValueError("this model does not support Flash Attention 2.0 yet")
            return attn_implementation

    kwargs = {"attn_implementation": "flash_attention_2"}
    assert _from_pretrained(NoFlash, "m", kwargs, auto_attention=True) == "tuneforge_varlen"
    with pytest.raises(ValueError, match="Flash Attention"):  # asked for by name (fa2): the error stands
        _from_pretrained(NoFlash, "m", kwargs, auto_attention=False)
