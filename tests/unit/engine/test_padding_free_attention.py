"""Samples concatenated into one row with per-sample position ids do not attend to each other."""

from __future__ import annotations

import torch

from tests.fixtures.tiny import build_tiny_llama
from tuneforge.engine.batching import PaddingFreeCollator


def test_logits_of_a_packed_sample_equal_its_logits_alone():
    model, tokenizer = build_tiny_llama(seed=3)
    model.eval()
    a = tokenizer.encode("Who are you? I am Forge, made by tuneforge.")
    b = tokenizer.encode("What is the capital of France? The capital of France is Paris.")
    batch = PaddingFreeCollator()([{"input_ids": a, "labels": a}, {"input_ids": b, "labels": b}])
    assert batch["input_ids"].shape == (1, len(a) + len(b))
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        alone_a = model(input_ids=torch.tensor([a])).logits[0]
        alone_b = model(input_ids=torch.tensor([b])).logits[0]
    torch.testing.assert_close(packed[: len(a)], alone_a, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(packed[len(a):], alone_b, atol=1e-5, rtol=1e-4)
    # use_cache=False as in training: with a KV cache transformers ignores packing. Without the position ids
    # the second sample would see the first, so the check above can fail.
    with torch.no_grad():
        leaky = model(input_ids=batch["input_ids"], use_cache=False).logits[0]
    assert not torch.allclose(leaky[len(a):], alone_b, atol=1e-3)


def test_no_target_crosses_a_sample_boundary():
    batch = PaddingFreeCollator()([{"input_ids": [5, 6, 7], "labels": [5, 6, 7]},
                                   {"input_ids": [8, 9], "labels": [-100, 9]}])
    assert batch["labels"].tolist() == [[-100, 6, 7, -100, 9]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1]]
