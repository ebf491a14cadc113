"""The two passes of an evaluation over one loaded chat model, batched: the loss on the reference answers, and
generated answers (left padding, so every prompt ends where generation starts)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tuneforge.data.records import ChatRecord
from tuneforge.data.tokenize import IGNORE_INDEX, encode_chat
from tuneforge.engine.generate import ChatModel

log = logging.getLogger(__name__)

BatchDone = Callable[[int, int], None]  # (samples done, samples in all)


@dataclass
class LossResult:
    per_sample: list[float | None]  # mean token loss on each reference answer (None: nothing of it fit)
    mean: float | None  # over all reference tokens of all samples (what perplexity is the exp of)
    tokens: int


@dataclass
class GenerationResult:
    answers: list[str]
    prompts: list[str]  # the rendered prompt each answer continues (LLaMA-Factory's "prompt" field)
    new_tokens: int
    seconds: float

    @property
    def tokens_per_second(self) -> float | None:
        return self.new_tokens / self.seconds if self.seconds > 0 else None


def prompt_messages(record: ChatRecord) -> list[dict[str, str]]:
    """Everything before the reference answer (the record's system prompt first), as chat messages."""
    head = [{"role": "system", "content": record.system}] if record.system is not None else []
    return head + [{"role": m.role, "content": m.content} for m in record.messages[:-1]]


def reference_losses(chat: ChatModel, records: Sequence[ChatRecord], cutoff_len: int, batch_size: int,
                     on_batch: BatchDone) -> LossResult:
    """Cross-entropy on the last answer of each record, with the prompt masked exactly as training masks it
    (data.tokenize.encode_chat; mask_history keeps earlier answers out of the score and the last turn in first
    when a record is over cutoff_len)."""
    import torch

    encoded = [encode_chat(r, chat.template, chat.tokenizer, cutoff_len, mask_history=True,
                           default_system=chat.system) for r in records]
    sums, counts = [0.0] * len(records), [0] * len(records)
    order = sorted(range(len(records)), key=lambda i: len(encoded[i].input_ids), reverse=True)
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        rows = [(encoded[i].input_ids, encoded[i].labels) for i in batch]
        with torch.inference_mode():
            token_losses, mask = _batch_token_losses(chat.model, rows, chat.tokenizer.pad_token_id)
        for row, i in enumerate(batch):
            sums[i] = float(token_losses[row].sum())
            counts[i] = int(mask[row].sum())
        on_batch(min(start + batch_size, len(order)), len(order))
    total = sum(counts)
    per_sample = [s / c if c else None for s, c in zip(sums, counts, strict=True)]
    return LossResult(per_sample, sum(sums) / total if total else None, total)


def _batch_token_losses(model: Any, rows: list[tuple[list[int], list[int]]], pad_id: int) -> tuple[Any, Any]:
    """Per-token losses (batch, positions) and where they count. Rows are left-padded so every answer ends at the
    right edge: the LM head then runs only over the last positions that hold answer tokens."""
    import torch
    import torch.nn.functional as F

    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    first_label = width
    for row, (row_ids, row_labels) in enumerate(rows):
        offset = width - len(row_ids)
        ids[row, offset:] = torch.tensor(row_ids)
        labels[row, offset:] = torch.tensor(row_labels)
        attention[row, offset:] = 1
        trained = [k for k, label in enumerate(row_labels) if label != IGNORE_INDEX]
        if trained:
            first_label = min(first_label, offset + trained[0])
    # logits at position p predict the token at p + 1: keep from the position before the first answer token
    keep = min(width, max(2, width - first_label + 1))
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    device = model.device
    logits = model(input_ids=ids.to(device), attention_mask=attention.to(device), position_ids=positions.to(device),
                   logits_to_keep=keep).logits.float()
    targets = labels[:, width - keep + 1:].to(device)
    losses = F.cross_entropy(logits[:, :-1].transpose(1, 2), targets, ignore_index=IGNORE_INDEX, reduction="none")
    mask = targets != IGNORE_INDEX
    return torch.where(mask, losses, torch.zeros_like(losses)).cpu(), mask.cpu()


def generate_answers(chat: ChatModel, records: Sequence[ChatRecord], *, max_new_tokens: int, cutoff_len: int,
                     batch_size: int, temperature: float, top_p: float, seed: int,
                     on_batch: BatchDone) -> GenerationResult:
    """One answer per record from its prompt, through the chat template; greedy when temperature is 0."""
    import torch
    from transformers import set_seed

    prompts = [chat.prompt_ids(prompt_messages(r)) for r in records]
    too_long = sum(len(p) > cutoff_len for p in prompts)
    if too_long:
        log.warning("%d prompt(s) over cutoff_len %d keep their last %d tokens", too_long, cutoff_len, cutoff_len)
        prompts = [p[-cutoff_len:] for p in prompts]
    set_seed(seed)
    sampling = ({"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0
                else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None})
    pad_id, stop_ids = chat.tokenizer.pad_token_id, set(chat.stop_ids)
    answers: list[str] = [""] * len(records)
    new_tokens, started = 0, time.perf_counter()
    # longest prompts first: similar lengths share a batch (less padding) and the peak memory comes at once
    order = sorted(range(len(records)), key=lambda i: len(prompts[i]), reverse=True)
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        width = max(len(prompts[i]) for i in batch)
        ids = torch.tensor([[pad_id] * (width - len(prompts[i])) + prompts[i] for i in batch])
        attention = torch.tensor([[0] * (width - len(prompts[i])) + [1] * len(prompts[i]) for i in batch])
        device = chat.model.device
        with torch.inference_mode():
            out = chat.model.generate(input_ids=ids.to(device), attention_mask=attention.to(device),
                                      max_new_tokens=max_new_tokens, eos_token_id=chat.stop_ids, pad_token_id=pad_id,
                                      **sampling)
        for row, i in enumerate(batch):
            answer, produced = _until_stop(out[row, width:].tolist(), stop_ids)
            new_tokens += produced
            answers[i] = chat.tokenizer.decode(answer, skip_special_tokens=True)
        on_batch(min(start + batch_size, len(order)), len(order))
    seconds = time.perf_counter() - started
    texts = [chat.tokenizer.decode(p, skip_special_tokens=False) for p in prompts]
    return GenerationResult(answers, texts, new_tokens, seconds)


def _until_stop(tokens: list[int], stop_ids: set[int]) -> tuple[list[int], int]:
    """The answer's tokens before its stop token, and how many tokens were generated (the stop token counts, the
    padding after it does not)."""
    for k, token in enumerate(tokens):
        if token in stop_ids:
            return tokens[:k], k + 1
    return tokens, len(tokens)
