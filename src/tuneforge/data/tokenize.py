"""Turn records into token ids and labels: prompt masking, multi-turn training, truncation, pre-training blocks.

Engine-side, but needs nothing beyond a tokenizer object with `encode` and `eos_token_id`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tuneforge.data.records import RESPONSE_ROLES, ChatRecord, TextRecord
from tuneforge.data.templates import ChatTemplate, system_with_tools

IGNORE_INDEX = -100  # the label value the loss skips (PyTorch's cross_entropy default)
MIN_RESPONSE_TOKENS = 8  # a truncated answer keeps at least this many tokens when it has them


@dataclass
class EncodedSample:
    input_ids: list[int]
    labels: list[int]
    truncated: bool = False


def count_trained(labels: Iterable[int]) -> int:
    """Tokens the loss is computed on."""
    return sum(1 for label in labels if label != IGNORE_INDEX)


def split_budget(prompt_len: int, response_len: int, budget: int) -> tuple[int, int]:
    """How many prompt and response tokens of one turn fit in `budget`.

    A short answer (at most half the budget) is kept whole; a short prompt too; otherwise both are cut in
    proportion to their lengths, the answer keeping at least MIN_RESPONSE_TOKENS.
    """
    if prompt_len + response_len <= budget:
        return prompt_len, response_len
    if response_len * 2 <= budget:
        response = response_len
    elif prompt_len * 2 <= budget:
        response = budget - prompt_len
    else:
        proportional = budget * response_len // (prompt_len + response_len)
        response = max(proportional, min(response_len, MIN_RESPONSE_TOKENS))
    response = min(response, response_len, budget)
    return min(prompt_len, budget - response), response


def encode_chat(
    record: ChatRecord,
    template: ChatTemplate,
    tokenizer: Any,
    cutoff_len: int,
    *,
    train_on_prompt: bool = False,
    mask_history: bool = False,
    default_system: str | None = None,
) -> EncodedSample:
    """Token ids with labels = IGNORE_INDEX on prompt tokens (system, user, headers) and ids on answers.

    Every turn's answer is trained unless `mask_history` (then only the last) or the answer is not `trained`
    (OpenAI's weight 0: context only). The tools a record offers are part of its system text. Over `cutoff_len`
    the first turn kept is shortened (the prompt loses its beginning, the answer its end) and turns that no longer
    fit are dropped; with `mask_history` the last turn is kept first, then as much recent history as fits.
    """
    system = system_with_tools(record.system if record.system is not None else default_system, record.tools,
                               template.default_system)
    turns = template.encode_turns(tokenizer, record.messages, system)
    weighted = list(zip(turns, [m.trained for m in record.messages if m.role in RESPONSE_ROLES], strict=True))
    order = list(reversed(weighted)) if mask_history else weighted
    pieces: list[tuple[list[int], list[int]]] = []
    budget, truncated = cutoff_len, False
    for index, ((prompt, response), learned) in enumerate(order):
        if len(prompt) + len(response) > budget:
            truncated = True
            if index > 0 or budget <= 0:
                break
            keep_prompt, keep_response = split_budget(len(prompt), len(response), budget)
            prompt, response = prompt[len(prompt) - keep_prompt:], response[:keep_response]
        budget -= len(prompt) + len(response)
        trained = (index == 0 or not mask_history) and learned
        prompt_labels = list(prompt) if train_on_prompt and trained else [IGNORE_INDEX] * len(prompt)
        response_labels = list(response) if trained else [IGNORE_INDEX] * len(response)
        pieces.append((prompt + response, prompt_labels + response_labels))
    if mask_history:
        pieces.reverse()
    input_ids = [token for ids, _ in pieces for token in ids]
    labels = [label for _, labels in pieces for label in labels]
    return EncodedSample(input_ids, labels, truncated)


def encode_pretrain(
    records: Sequence[TextRecord], tokenizer: Any, cutoff_len: int, packing: bool = True
) -> list[EncodedSample]:
    """Each text + eos. With packing, all texts are concatenated and cut into blocks of cutoff_len tokens
    (the last block may be shorter); without, each text is truncated on its own."""
    eos = [tokenizer.eos_token_id] if getattr(tokenizer, "eos_token_id", None) is not None else []
    encoded = [list(tokenizer.encode(record.text, add_special_tokens=False)) + eos for record in records]
    if not packing:
        return [EncodedSample(ids[:cutoff_len], ids[:cutoff_len], len(ids) > cutoff_len) for ids in encoded]
    stream = [token for ids in encoded for token in ids]
    blocks = [stream[start:start + cutoff_len] for start in range(0, len(stream), cutoff_len)]
    return [EncodedSample(block, list(block)) for block in blocks]
