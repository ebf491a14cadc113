"""Token ids for the preference and reinforcement-learning stages, with the run's own chat template.

The TRL trainers would otherwise render prompts with the tokenizer's chat template; encoding here keeps one template
(the one SFT used, the one the console previews) for every stage:
- a preference pair (rm, dpo): the prompt's ids once, then the chosen and the rejected answer's ids;
- a KTO sample: the prompt's ids, the answer's ids and whether the answer is desirable;
- a prompt (grpo, ppo): the prompt's text and ids ending with the assistant header, and the row as JSON for graders.
Over `cutoff_len`, the prompt loses its beginning and the answers their end (split as for SFT).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tuneforge.data.records import ChatRecord, KTORecord, Message, PreferenceRecord, PromptRecord
from tuneforge.data.templates import ChatTemplate, system_with_tools
from tuneforge.data.tokenize import split_budget


@dataclass
class PairSample:
    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]
    truncated: bool = False

    @property
    def n_tokens(self) -> int:
        return 2 * len(self.prompt_ids) + len(self.chosen_ids) + len(self.rejected_ids)

    @property
    def n_trained(self) -> int:
        return len(self.chosen_ids) + len(self.rejected_ids)


@dataclass
class KTOSample:
    prompt_ids: list[int]
    completion_ids: list[int]
    label: bool
    truncated: bool = False

    @property
    def n_tokens(self) -> int:
        return len(self.prompt_ids) + len(self.completion_ids)

    @property
    def n_trained(self) -> int:
        return len(self.completion_ids)


@dataclass
class PromptSample:
    prompt: str  # the rendered prompt text, ending with the assistant header: generation starts here
    prompt_ids: list[int]
    item: str  # the dataset row as JSON: graders read it as {{item.…}}
    truncated: bool = False

    @property
    def n_tokens(self) -> int:
        return len(self.prompt_ids)

    @property
    def n_trained(self) -> int:
        return 0  # the answers are sampled during training


def _prompt_and_answer(template: ChatTemplate, tokenizer: Any, messages: list[Message],
                       system: str | None) -> tuple[list[int], list[int]]:
    """Every turn before the last answer is prompt; the last answer (with its end-of-turn token) is the answer."""
    turns = template.encode_turns(tokenizer, messages, system)
    if not turns:
        return [], []
    prompt = [token for ids, answer in turns[:-1] for token in ids + answer] + turns[-1][0]
    return prompt, turns[-1][1]


def _system(record: ChatRecord | PreferenceRecord | PromptRecord, template: ChatTemplate,
            default_system: str | None) -> str | None:
    """The record's system text (else the run's default), with the tools it offers."""
    own = record.system if record.system is not None else default_system
    return system_with_tools(own, record.tools, template.default_system)


def _fit(prompt: list[int], answers: list[list[int]], cutoff_len: int) -> tuple[list[int], list[list[int]], bool]:
    longest = max(len(answer) for answer in answers)
    if len(prompt) + longest <= cutoff_len:
        return prompt, answers, False
    keep_prompt, keep_answer = split_budget(len(prompt), longest, cutoff_len)
    return prompt[len(prompt) - keep_prompt:], [answer[:keep_answer] for answer in answers], True


def encode_pair(record: PreferenceRecord, template: ChatTemplate, tokenizer: Any, cutoff_len: int,
                default_system: str | None = None) -> PairSample:
    system = _system(record, template, default_system)
    prompt, chosen = _prompt_and_answer(template, tokenizer, [*record.messages, record.chosen], system)
    prompt_rejected, rejected = _prompt_and_answer(template, tokenizer, [*record.messages, record.rejected], system)
    if prompt != prompt_rejected:  # a template whose prompt depends on the answer: keep the shared part
        shared = next((i for i, (a, b) in enumerate(zip(prompt, prompt_rejected, strict=False)) if a != b),
                      min(len(prompt), len(prompt_rejected)))
        chosen, rejected = prompt[shared:] + chosen, prompt_rejected[shared:] + rejected
        prompt = prompt[:shared]
    prompt, (chosen, rejected), truncated = _fit(prompt, [chosen, rejected], cutoff_len)
    return PairSample(prompt, chosen, rejected, truncated)


def encode_kto(record: KTORecord, template: ChatTemplate, tokenizer: Any, cutoff_len: int,
               default_system: str | None = None) -> KTOSample:
    system = _system(record, template, default_system)
    prompt, answer = _prompt_and_answer(template, tokenizer, record.messages, system)
    prompt, (answer,), truncated = _fit(prompt, [answer], cutoff_len)
    return KTOSample(prompt, answer, record.label, truncated)


def encode_prompt(record: PromptRecord, template: ChatTemplate, tokenizer: Any, cutoff_len: int,
                  default_system: str | None = None) -> PromptSample:
    """The prompt ends with the assistant header; a prompt over cutoff_len loses its beginning."""
    system = _system(record, template, default_system)
    text = template.render_prompt(record.messages, system)
    ids = list(tokenizer.encode(text, add_special_tokens=False))
    truncated = len(ids) > cutoff_len
    if truncated:
        ids = ids[len(ids) - cutoff_len:]
        text = tokenizer.decode(ids, skip_special_tokens=False)
    return PromptSample(text, ids, json.dumps(record.item, ensure_ascii=False), truncated)


def encode_record(record: ChatRecord | PreferenceRecord | PromptRecord, template: ChatTemplate, tokenizer: Any,
                  cutoff_len: int, default_system: str | None = None) -> PairSample | KTOSample | PromptSample:
    if isinstance(record, PreferenceRecord):
        return encode_pair(record, template, tokenizer, cutoff_len, default_system)
    if isinstance(record, KTORecord):
        return encode_kto(record, template, tokenizer, cutoff_len, default_system)
    if isinstance(record, PromptRecord):
        return encode_prompt(record, template, tokenizer, cutoff_len, default_system)
    raise TypeError(f"{type(record).__name__} is not a preference, KTO or prompt record")
