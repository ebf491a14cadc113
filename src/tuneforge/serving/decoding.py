"""Per-request pieces of decoding: choosing the next token (greedy or temperature / top-p with the request's seed)
and turning generated ids into streamed text that never shows a stop string or half a UTF-8 character."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class SamplingParams:
    max_new_tokens: int
    temperature: float = 1.0  # OpenAI's default; 0 = greedy
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None

    def generator(self) -> torch.Generator | None:
        if self.temperature <= 0:
            return None
        seed = self.seed if self.seed is not None else random.getrandbits(63)
        return torch.Generator().manual_seed(seed)


def next_tokens(logits: torch.Tensor, params: list[SamplingParams], generators: list[Any]) -> list[int]:
    """One token per row of `logits` [batch, vocab], each row with its own request's settings."""
    chosen = logits.argmax(dim=-1).tolist()
    for row, (p, gen) in enumerate(zip(params, generators, strict=True)):
        if p.temperature > 0:
            chosen[row] = _sample(logits[row].float(), p.temperature, p.top_p, gen)
    return chosen


def _sample(logits: torch.Tensor, temperature: float, top_p: float, gen: torch.Generator | None) -> int:
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        # Keep the smallest set whose mass reaches top_p (the first token always stays).
        drop = sorted_probs.cumsum(-1) - sorted_probs >= top_p
        sorted_probs[drop] = 0.0
        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
    return int(torch.multinomial(probs.cpu(), 1, generator=gen).item())


class TextAssembler:
    """Generated ids → text deltas. Decodes the whole answer each time (tokenizers merge spaces and bytes across
    tokens), holds back a tail that could still become a stop string, and cuts the answer at the first one."""

    def __init__(self, tokenizer: Any, stop: list[str]) -> None:
        self._tokenizer = tokenizer
        self._stop = [s for s in stop if s]
        self.ids: list[int] = []
        self.text = ""  # the answer so far, as far as it is final
        self._sent = 0
        self.stopped = False

    def add(self, token_id: int) -> str:
        """The new text this token makes visible; sets `stopped` when a stop string appeared."""
        self.ids.append(token_id)
        text = self._tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
            return ""
        cut = min((i for i in (text.find(s) for s in self._stop) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self.text = text[:cut]
            return self._flush()
        self.text = text
        return self._emit_upto(len(text) - self._held_back(text))

    def finish(self) -> str:
        """The rest of the text once decoding ended (held-back tails included)."""
        if not self.stopped:
            self.text = self._tokenizer.decode(self.ids, skip_special_tokens=True)
        return self._flush()

    def _held_back(self, text: str) -> int:
        longest = 0
        for stop in self._stop:
            for n in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:n]):
                    longest = n
                    break
        return longest

    def _flush(self) -> str:
        return self._emit_upto(len(self.text))

    def _emit_upto(self, end: int) -> str:
        if end <= self._sent:
            return ""
        delta = self.text[self._sent:end]
        self._sent = end
        return delta
