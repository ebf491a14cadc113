"""Continuous batching on one model: a scheduler thread decodes every request in flight together, one token per
step, with one KV cache. Requests that arrive join at the next step boundary: they are prefilled as a left-padded
batch and their cache rows are merged into the running cache; finished requests leave the batch at once."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from tuneforge.serving.decoding import SamplingParams, TextAssembler, next_tokens

log = logging.getLogger(__name__)


@dataclass
class TextDelta:
    text: str


@dataclass
class Finished:
    reason: str  # "stop" | "length"
    prompt_tokens: int
    completion_tokens: int


@dataclass
class Failed:
    message: str


StreamEvent = TextDelta | Finished | Failed


@dataclass
class Generation:
    """One request in flight; `emit` is called from the scheduler thread with each event, in order."""

    prompt_ids: list[int]
    params: SamplingParams
    emit: Callable[[StreamEvent], None]
    cancelled: threading.Event = field(default_factory=threading.Event)
    text: TextAssembler | None = None
    generator: Any = None


@dataclass
class _Batch:
    """The running batch: row i of every tensor belongs to gens[i]."""

    gens: list[Generation]
    cache: Any  # DynamicCache holding every token but the pending one
    mask: torch.Tensor  # [batch, cache length], 0 on left padding
    pending: torch.Tensor  # [batch] the last chosen token, fed at the next step
    positions: torch.Tensor  # [batch] the position id of the pending token


class BatchScheduler:
    """Owns the model: only its thread runs forward passes. `submit` is safe from any thread."""

    def __init__(self, model: Any, tokenizer: Any, stop_ids: list[int], max_batch: int = 8) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.stop_ids = set(stop_ids)
        self.max_batch = max_batch
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.device = model.device
        self.largest_batch = 0  # the most requests decoded together so far (reported by /health)
        self._waiting: queue.Queue[Generation] = queue.Queue()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tuneforge-batcher", daemon=True)
        # Joining a running batch pads cache rows in time; sliding-window layers keep a rolling window instead.
        self._can_join = True

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=10)

    def submit(self, gen: Generation) -> None:
        self._waiting.put(gen)

    def _run(self) -> None:
        batch: _Batch | None = None
        while not self._closed.is_set():
            try:
                if batch is None:
                    try:
                        first = self._waiting.get(timeout=0.1)
                    except queue.Empty:
                        continue
                    batch = self._admit([first, *self._take(self.max_batch - 1)], None)
                elif self._can_join and len(batch.gens) < self.max_batch and not self._waiting.empty():
                    batch = self._admit(self._take(self.max_batch - len(batch.gens)), batch)
                else:
                    batch = self._step(batch)
            except Exception as exc:  # a failed forward pass fails its requests, never the server
                log.exception("decoding failed")
                gens = batch.gens if batch else []
                for gen in gens:
                    gen.emit(Failed(f"generation failed: {exc}"))
                batch = None

    def _take(self, limit: int) -> list[Generation]:
        taken: list[Generation] = []
        while len(taken) < limit:
            try:
                taken.append(self._waiting.get_nowait())
            except queue.Empty:
                break
        return taken

    @torch.inference_mode()
    def _admit(self, gens: list[Generation], batch: _Batch | None) -> _Batch | None:
        """Prefill new requests together (left-padded) and merge them into the running batch."""
        gens = [g for g in gens if not g.cancelled.is_set()]
        if not gens:
            return batch
        for gen in gens:
            gen.text = TextAssembler(self.tokenizer, gen.params.stop)
            gen.generator = gen.params.generator()
        longest = max(len(g.prompt_ids) for g in gens)
        ids = torch.full((len(gens), longest), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(gens), longest), dtype=torch.long)
        for row, gen in enumerate(gens):
            ids[row, longest - len(gen.prompt_ids):] = torch.tensor(gen.prompt_ids)
            mask[row, longest - len(gen.prompt_ids):] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                         use_cache=True, logits_to_keep=1)
        if any(type(layer) is not DynamicLayer for layer in cache.layers):
            self._can_join = False
        fresh = _Batch(gens, cache, mask, torch.zeros(len(gens), dtype=torch.long, device=self.device),
                       mask.sum(-1))
        log.debug("prefilled %d request(s), %d tokens at most; %d already decoding", len(gens), longest,
                  len(batch.gens) if batch else 0)
        fresh = self._choose(fresh, out.logits[:, -1, :])
        if fresh is None:
            return batch
        return fresh if batch is None else _merge(batch, fresh)

    @torch.inference_mode()
    def _step(self, batch: _Batch) -> _Batch | None:
        """Feed every row's pending token, choose the next ones."""
        batch.mask = torch.cat([batch.mask, batch.mask.new_ones((len(batch.gens), 1))], dim=-1)
        out = self.model(input_ids=batch.pending[:, None], attention_mask=batch.mask,
                         position_ids=batch.positions[:, None], past_key_values=batch.cache, use_cache=True)
        batch.positions = batch.positions + 1
        return self._choose(batch, out.logits[:, -1, :])

    def _choose(self, batch: _Batch, logits: torch.Tensor) -> _Batch | None:
        """Pick each row's next token, stream its text, and drop the rows that are done."""
        self.largest_batch = max(self.largest_batch, len(batch.gens))
        chosen = next_tokens(logits, [g.params for g in batch.gens], [g.generator for g in batch.gens])
        keep: list[int] = []
        for row, (gen, token) in enumerate(zip(batch.gens, chosen, strict=True)):
            if self._advance(gen, token):
                keep.append(row)
        if not keep:
            return None
        batch.pending = torch.tensor(chosen, dtype=torch.long, device=self.device)
        return _select(batch, keep) if len(keep) < len(batch.gens) else batch

    def _advance(self, gen: Generation, token: int) -> bool:
        """Emit what `token` adds to `gen`'s answer; False once `gen` is finished."""
        assert gen.text is not None
        if gen.cancelled.is_set():
            return False
        stopped = token in self.stop_ids
        if not stopped:
            delta = gen.text.add(token)
            stopped = gen.text.stopped
            if delta:
                gen.emit(TextDelta(delta))
        else:
            gen.text.ids.append(token)
        count = len(gen.text.ids)
        if stopped or count >= gen.params.max_new_tokens:
            rest = gen.text.finish()
            if rest:
                gen.emit(TextDelta(rest))
            gen.emit(Finished("stop" if stopped else "length", len(gen.prompt_ids), count))
            return False
        return True


def _select(batch: _Batch, rows: list[int]) -> _Batch:
    """Keep `rows`, and cut cache columns that are padding in every remaining row."""
    index = torch.tensor(rows, device=batch.mask.device)
    mask = batch.mask.index_select(0, index)
    lead = int((mask.sum(0) == 0).long().cumprod(0).sum().item())
    for layer in batch.cache.layers:
        layer.keys = layer.keys.index_select(0, index)[..., lead:, :]
        layer.values = layer.values.index_select(0, index)[..., lead:, :]
    return _Batch([batch.gens[i] for i in rows], batch.cache, mask[:, lead:], batch.pending.index_select(0, index),
                  batch.positions.index_select(0, index))


def _merge(old: _Batch, new: _Batch) -> _Batch:
    """One batch from two: both left-padded in time to the longer cache, rows concatenated."""
    length = max(old.mask.shape[1], new.mask.shape[1])

    def pad(t: torch.Tensor, dim: int) -> torch.Tensor:
        missing = length - t.shape[dim]
        if missing == 0:
            return t
        shape = list(t.shape)
        shape[dim] = missing
        return torch.cat([t.new_zeros(shape), t], dim=dim)

    for a, b in zip(old.cache.layers, new.cache.layers, strict=True):
        a.keys = torch.cat([pad(a.keys, -2), pad(b.keys, -2)], dim=0)
        a.values = torch.cat([pad(a.values, -2), pad(b.values, -2)], dim=0)
    mask = torch.cat([pad(old.mask, 1), pad(new.mask, 1)], dim=0)
    return _Batch(old.gens + new.gens, old.cache, mask, torch.cat([old.pending, new.pending]),
                  torch.cat([old.positions, new.positions]))
