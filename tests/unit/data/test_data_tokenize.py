"""Tokenisation: which tokens are trained, truncation, pre-training blocks, packing."""

from __future__ import annotations

from tuneforge.data.packing import pack_samples, plan_bins
from tuneforge.data.records import ChatRecord, Message, TextRecord
from tuneforge.data.templates import get_template
from tuneforge.data.tokenize import (
    IGNORE_INDEX,
    EncodedSample,
    count_trained,
    encode_chat,
    encode_pretrain,
    split_budget,
)


def trained_text(tokenizer, sample: EncodedSample) -> str:
    return tokenizer.decode([t for t, label in zip(sample.input_ids, sample.labels, strict=True)
                             if label != IGNORE_INDEX])


def chat(*texts: str, system: str | None = None) -> ChatRecord:
    roles = ["user", "assistant"] * len(texts)
    return ChatRecord([Message(role, text) for role, text in zip(roles, texts, strict=False)], system, "t.jsonl:1")


def test_only_the_answer_is_trained_single_turn(tokenizer, chatml):
    sample = encode_chat(chat("What is the capital of France?", "Paris."), chatml, tokenizer, 512)
    assert trained_text(tokenizer, sample) == "Paris.<|im_end|>\n"
    text = tokenizer.decode(sample.input_ids)
    assert text == ("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
                    "Paris.<|im_end|>\n")
    prompt_len = len(sample.labels) - count_trained(sample.labels)
    assert all(label == IGNORE_INDEX for label in sample.labels[:prompt_len])
    assert sample.labels[prompt_len:] == sample.input_ids[prompt_len:]


def test_every_answer_is_trained_in_multi_turn(tokenizer, chatml):
    record = chat("Hi", "Hello!", "Who are you?", "I am Forge.", system="Be brief.")
    sample = encode_chat(record, chatml, tokenizer, 512)
    assert trained_text(tokenizer, sample) == "Hello!<|im_end|>\nI am Forge.<|im_end|>\n"
    history_masked = encode_chat(record, chatml, tokenizer, 512, mask_history=True)
    assert trained_text(tokenizer, history_masked) == "I am Forge.<|im_end|>\n"
    assert history_masked.input_ids == sample.input_ids


def test_train_on_prompt_trains_everything(tokenizer, chatml):
    sample = encode_chat(chat("Hi", "Hello!"), chatml, tokenizer, 512, train_on_prompt=True)
    assert sample.labels == sample.input_ids


def test_record_system_then_config_default_then_template_default(tokenizer):
    qwen = get_template("qwen", tokenizer)
    own = encode_chat(chat("Hi", "Hello!", system="Mine."), qwen, tokenizer, 512, default_system="Config.")
    assert "Mine." in tokenizer.decode(own.input_ids)
    configured = encode_chat(chat("Hi", "Hello!"), qwen, tokenizer, 512, default_system="Config.")
    assert "Config." in tokenizer.decode(configured.input_ids)
    assert "You are Qwen" in tokenizer.decode(encode_chat(chat("Hi", "Hello!"), qwen, tokenizer, 512).input_ids)


def test_truncation_keeps_part_of_a_long_answer(tokenizer, chatml):
    long_answer = "Waves fold into foam, salt wind carries gull voices. " * 20
    sample = encode_chat(chat("Write a haiku about the sea. " * 20, long_answer), chatml, tokenizer, 64)
    assert len(sample.input_ids) == 64
    assert sample.truncated
    assert count_trained(sample.labels) >= 8
    assert trained_text(tokenizer, sample).startswith("Waves fold")


def test_truncation_drops_later_turns_that_do_not_fit(tokenizer, chatml):
    record = chat("Hi", "Hello!", "Write a haiku about the sea. " * 10, "Waves fold into foam. " * 10)
    sample = encode_chat(record, chatml, tokenizer, 30)
    assert trained_text(tokenizer, sample) == "Hello!<|im_end|>\n"
    assert sample.truncated and len(sample.input_ids) <= 30


def test_mask_history_keeps_the_last_turn_first(tokenizer, chatml):
    record = chat("Write a haiku about the sea. " * 10, "Waves fold. " * 10, "Hi", "Hello!")
    sample = encode_chat(record, chatml, tokenizer, 30, mask_history=True)
    assert trained_text(tokenizer, sample) == "Hello!<|im_end|>\n"


def test_split_budget():
    assert split_budget(10, 10, 100) == (10, 10)
    assert split_budget(100, 10, 50) == (40, 10)  # short answer kept whole
    assert split_budget(10, 100, 50) == (10, 40)  # short prompt kept whole
    prompt, response = split_budget(300, 100, 100)
    assert prompt + response == 100 and response == 25
    assert split_budget(1000, 50, 60)[1] >= 8


def test_pretrain_blocks(tokenizer):
    records = [TextRecord("The capital of France is Paris.", "a:1"), TextRecord("Bonjour.", "a:2")]
    eos = tokenizer.eos_token_id
    whole = encode_pretrain(records, tokenizer, 1024, packing=False)
    assert [s.input_ids[-1] for s in whole] == [eos, eos]
    assert all(s.labels == s.input_ids for s in whole)
    blocks = encode_pretrain(records, tokenizer, 5, packing=True)
    assert all(len(b.input_ids) == 5 for b in blocks[:-1])
    assert [t for b in blocks for t in b.input_ids] == [t for s in whole for t in s.input_ids]
    assert len(encode_pretrain(records, tokenizer, 3, packing=False)[0].input_ids) == 3


def make_sample(length: int, start: int = 1) -> EncodedSample:
    ids = list(range(start, start + length))
    return EncodedSample(ids, [IGNORE_INDEX] * (length // 2) + ids[length // 2:])


def test_packing_resets_positions_and_masks_boundaries():
    samples = [make_sample(n, 100 * i) for i, n in enumerate([6, 3, 5, 2, 4, 8])]
    rows = pack_samples(samples, 10, seed=0)
    assert all(len(row.input_ids) <= 10 for row in rows)
    assert sorted(t for row in rows for t in row.input_ids) == sorted(t for s in samples for t in s.input_ids)
    assert sum(row.num_samples for row in rows) == len(samples)
    for row in rows:
        starts = [i for i, position in enumerate(row.position_ids) if position == 0]
        assert starts[0] == 0
        for start in starts:
            assert row.labels[start] == IGNORE_INDEX  # nothing predicted across a boundary
        ends = [*starts[1:], len(row.input_ids)]
        for start, end in zip(starts, ends, strict=True):
            assert row.position_ids[start:end] == list(range(end - start))
    assert pack_samples(samples, 10, seed=0) == rows  # deterministic


def test_plan_bins_fills_rows():
    bins = plan_bins([6, 3, 5, 2, 4, 8], 10)
    assert len(bins) == 3  # 28 tokens fit in 3 rows of 10
    assert sorted(i for b in bins for i in b) == list(range(6))
