"""A long batch split at sample boundaries gives the same loss and gradients as one forward pass."""

from __future__ import annotations

import torch
from transformers import TrainingArguments

from tests.fixtures.tiny import build_tiny_llama
from tuneforge.engine.batching import PaddingFreeCollator
from tuneforge.engine.trainer import ForgeTrainer, TokenCounter, split_at_samples


def _gradients(budget, tmp_path, fused_loss=False):
    model, tokenizer = build_tiny_llama(seed=5)
    texts = ["Who are you? I am Forge.", "What is the capital of France? Paris.", "Name a number. 7 8 9 10",
             "Write a haiku about the sea. Waves fold into foam."]
    # The first 4 tokens stand for a prompt: not trained.
    samples = [{"input_ids": tokenizer.encode(t), "labels": [-100] * 4 + tokenizer.encode(t)[4:]} for t in texts]
    batch = PaddingFreeCollator()(samples)
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    trainer = ForgeTrainer(model=model, args=args, token_counter=TokenCounter(), max_tokens_per_forward=budget,
                           fused_loss=fused_loss)
    trainer.create_optimizer()
    loss = trainer.training_step(model, batch)
    return loss, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}, batch


def test_split_batch_gives_the_same_gradient(tmp_path):
    loss_whole, grads_whole, batch = _gradients(None, tmp_path / "a")
    assert len(split_at_samples(batch, 12)) >= 3  # the budget really splits this batch
    loss_split, grads_split, _ = _gradients(12, tmp_path / "b")
    torch.testing.assert_close(loss_split, loss_whole, atol=1e-5, rtol=1e-5)
    for name, grad in grads_whole.items():
        torch.testing.assert_close(grads_split[name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_chunks_keep_whole_samples():
    batch = PaddingFreeCollator()([{"input_ids": [1] * n, "labels": [1] * n} for n in (5, 7, 3, 9)])
    chunks = split_at_samples(batch, 11)
    assert [c["input_ids"].shape[1] for c in chunks] == [5, 10, 9]
    assert [c["input_ids"].shape[1] for c in split_at_samples(batch, 12)] == [12, 12]
    assert all(c["position_ids"][0, 0] == 0 for c in chunks)


def test_the_models_own_loss_path_gives_the_same_loss_and_gradient(tmp_path):
    """enable_liger_kernel hands the labels to the model, whose (Liger-patched) forward computes the loss without
    the logits. Without Liger the model's stock loss takes the same path: it must equal the worker's own."""
    loss_own, grads_own, _ = _gradients(None, tmp_path / "a")
    loss_model, grads_model, _ = _gradients(None, tmp_path / "b", fused_loss=True)
    torch.testing.assert_close(loss_model, loss_own, atol=1e-5, rtol=1e-5)
    for name, grad in grads_own.items():
        torch.testing.assert_close(grads_model[name], grad, atol=1e-5, rtol=1e-4, msg=name)
