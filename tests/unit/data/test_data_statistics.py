"""dataset_statistics on small known files: rows per split, token percentiles, cutoff, duplicates, histogram;
and the token counter's shortcut, which must give exactly what whole-text encoding gives."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tuneforge.data import token_counting
from tuneforge.data.statistics import dataset_statistics, histogram, near_key, summarize
from tuneforge.data.token_counting import TokenCounter, pieces_add_up

BUNDLED = Path.home() / ".tuneforge" / "models" / "smollm2-135m-instruct" / "tokenizer.json"
CORPUS = ["The capital of France is Paris.", "Write a haiku about the sea, please!", "你好 世界 数据集",
          "tabs\tand\nnew lines  and  double spaces", "numbers 123 4567 and it's don't we'll"] * 20


def write_lines(path: Path, rows: list) -> Path:
    path.write_text("\n".join(json.dumps(row, ensure_ascii=False) for row in rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def word_tokenizer(tmp_path_factory) -> Path:
    """One token per whitespace-separated word, so expected lengths are easy to count by hand."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    tokenizer = Tokenizer(models.WordLevel({"[UNK]": 0, "q": 1, "w": 2}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    path = tmp_path_factory.mktemp("word") / "tokenizer.json"
    tokenizer.save(str(path))
    return path


@pytest.fixture(scope="module")
def byte_bpe(tmp_path_factory) -> Path:
    """A small byte-level BPE like GPT-2 / Llama 3 / SmolLM, trained here (no download)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(CORPUS, trainer=trainer)
    path = tmp_path_factory.mktemp("bpe") / "tokenizer.json"
    tokenizer.save(str(path))
    return path


def test_token_percentiles_cutoff_and_histogram_on_a_known_file(tmp_path, word_tokenizer):
    rows = [{"instruction": "q", "output": " ".join(["w"] * n)} for n in range(1, 21)]  # lengths 2..21
    path = write_lines(tmp_path / "train.jsonl", rows)
    stats = dataset_statistics({"train": [path]}, formatting=None, purpose="sft", tokenizer_file=word_tokenizer,
                               cutoff_len=15, bins=4)
    train = stats.splits["train"]
    assert (train.rows, train.rows_invalid, train.total_tokens) == (20, 0, sum(range(2, 22)))
    assert train.tokens.model_dump() == {"min": 2, "p50": 11, "p95": 20, "max": 21, "mean": 11.5}
    assert train.over_cutoff == 6  # 16..21 tokens
    assert train.histogram.model_dump() == {"edges": [2, 7, 12, 17, 22], "counts": [5, 5, 5, 5]}
    assert str(word_tokenizer) in stats.tokens_measured_with
    assert stats.overall == train.model_copy(update={"split": "all"})


def test_splits_duplicates_and_invalid_rows(tmp_path, word_tokenizer):
    train = write_lines(tmp_path / "train.jsonl", [
        {"instruction": "Say hi", "output": "Hello, world!"},
        {"instruction": "Say hi", "output": "Hello, world!"},  # exact repeat of 1
        {"instruction": "say HI", "output": "hello world"},  # near repeat of 1
        {"instruction": "Other", "output": "   "},  # empty answer: invalid
        {"instruction": "no answer"},
    ])
    valid = write_lines(tmp_path / "valid.jsonl", [
        {"instruction": "Say hi", "output": "Hello, world!"},  # leaks from train
        {"instruction": "Fresh", "output": "new"},
    ])
    stats = dataset_statistics({"train": [train], "valid": [valid]}, formatting=None, purpose="sft",
                               tokenizer_file=word_tokenizer)
    first, second = stats.splits["train"], stats.splits["valid"]
    assert (first.rows, first.rows_invalid, first.empty_responses) == (3, 2, 1)
    assert (first.exact_duplicates, first.near_duplicates) == (1, 1)
    assert [e.model_dump() for e in first.exact_duplicate_examples] == [
        {"location": "train.jsonl:2", "same_as": "train.jsonl:1"}]
    assert [e.model_dump() for e in first.near_duplicate_examples] == [
        {"location": "train.jsonl:3", "same_as": "train.jsonl:1"}]
    assert (second.rows, second.exact_duplicates) == (2, 1)
    assert second.exact_duplicate_examples[0].same_as == "train.jsonl:1"
    assert stats.overall.rows == 5 and stats.overall.exact_duplicates == 2
    assert first.over_cutoff is None and stats.cutoff_len is None


def test_preference_length_is_prompt_plus_longer_answer(tmp_path, word_tokenizer):
    path = write_lines(tmp_path / "pref.jsonl", [{"instruction": "q q", "chosen": "w w w", "rejected": "w w w w w"}])
    stats = dataset_statistics({"train": [path]}, formatting=None, purpose="preference",
                               tokenizer_file=word_tokenizer)
    assert stats.splits["train"].tokens.max == 7


def test_without_a_tokenizer_lengths_are_estimated_and_say_so(tmp_path):
    path = write_lines(tmp_path / "t.jsonl", [{"text": "x" * 36}, {"text": "y" * 37}])
    stats = dataset_statistics({"train": [path]}, formatting=None, purpose="pt", tokenizer_file=None)
    assert stats.tokens_measured_with.startswith("estimate: characters / 3.6")
    assert (stats.splits["train"].tokens.min, stats.splits["train"].tokens.max) == (10, math.ceil(37 / 3.6))


def test_bad_arguments_name_the_field(tmp_path):
    path = write_lines(tmp_path / "a.jsonl", [{"instruction": "q", "output": "a"}])
    broken = tmp_path / "tokenizer.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="tokenizer_file: cannot load"):
        dataset_statistics({"train": [path]}, formatting=None, purpose="sft", tokenizer_file=broken)
    with pytest.raises(ValueError, match="cutoff_len"):
        dataset_statistics({"train": [path]}, formatting=None, purpose="sft", tokenizer_file=None, cutoff_len=0)


def test_summary_and_histogram_helpers():
    assert summarize([]) is None and histogram([], 20) is None
    assert summarize([5]).model_dump() == {"min": 5, "p50": 5, "p95": 5, "max": 5, "mean": 5.0}
    assert histogram([3, 3, 3], 20).model_dump() == {"edges": [3, 4], "counts": [3]}
    assert near_key("Hello, World!") == near_key("hello world") == near_key("HELLO-WORLD")
    assert near_key("你好，世界") == near_key("你好 世界")


# Pieces of text joined: spaces next to other whitespace, digits, CJK, emoji and special tokens are the hard cases.
PIECES = [*"ab c,.!'\n\t12你🙂\xa0", " the", "  ", "<|im_end|>", "\r\n"]
texts = st.lists(st.lists(st.sampled_from(PIECES), max_size=40).map("".join), min_size=1, max_size=30)


@pytest.fixture(scope="module")
def bpe_counter(byte_bpe) -> TokenCounter:
    return TokenCounter(byte_bpe)


@pytest.fixture(scope="module")
def smollm2_counter() -> TokenCounter:
    if not BUNDLED.is_file():
        pytest.skip("the bundled SmolLM2 tokenizer is not in the model cache")
    return TokenCounter(BUNDLED)


@settings(max_examples=150, deadline=None)
@given(batch=texts)
def test_piece_counts_equal_whole_text_encoding_byte_bpe(bpe_counter, batch):
    assert bpe_counter._pieces is not None  # the shortcut is on for byte-level BPE
    assert bpe_counter.count(batch) == bpe_counter.encode_whole(batch)


@settings(max_examples=150, deadline=None)
@given(batch=texts)
def test_piece_counts_equal_whole_text_encoding_smollm2(smollm2_counter, batch):
    assert smollm2_counter._pieces is not None
    assert smollm2_counter.count(batch) == smollm2_counter.encode_whole(batch)


def test_shortcut_only_for_tokenizers_that_split_at_spaces(byte_bpe):
    config = json.loads(byte_bpe.read_text())
    assert pieces_add_up(config)
    assert not pieces_add_up({**config, "pre_tokenizer": None})
    assert not pieces_add_up({**config, "pre_tokenizer": {"type": "Metaspace", "replacement": "▁"}})
    assert not pieces_add_up({**config, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": True}})
    assert not pieces_add_up({**config, "normalizer": {"type": "Strip", "left": True, "right": True}})
    stripping = [{"id": 9, "content": "<mask>", "lstrip": True, "rstrip": False, "single_word": False}]
    assert not pieces_add_up({**config, "added_tokens": stripping})


def test_a_wrong_shortcut_is_turned_off_on_the_first_batch(byte_bpe, monkeypatch):
    counter = TokenCounter(byte_bpe)
    monkeypatch.setattr(token_counting._PieceCounts, "count", lambda self, texts: [0] * len(texts))
    batch = ["hello there", "general kenobi"]
    assert counter.count(batch) == counter.encode_whole(batch) and counter._pieces is None
