"""`tokenized_path` saves the tokenised samples and the next run reads them instead of the data; `overwrite_cache`
tokenises afresh and replaces the copy."""

from __future__ import annotations

import json

from tests.fixtures.tiny import build_tokenizer
from tuneforge.data.prepare import prepare_datasets
from tuneforge.data.templates import fix_tokenizer, get_template
from tuneforge.schemas import parse_training_config


def _write(path, answers):
    path.write_text("\n".join(json.dumps({"instruction": f"Q{i}?", "input": "", "output": a})
                              for i, a in enumerate(answers)) + "\n", encoding="utf-8")


def test_a_saved_copy_is_read_back_and_overwrite_cache_replaces_it(tmp_path):
    tokenizer = build_tokenizer(tmp_path / "tok")
    template = get_template("chatml", tokenizer)
    fix_tokenizer(tokenizer, template)
    data = tmp_path / "data.jsonl"
    _write(data, ["one two", "three four five"])
    copy = tmp_path / "tokenized"

    def prepare(**overrides):
        cfg = parse_training_config({"model_name_or_path": "m", "dataset": str(data), "template": "chatml",
                                     "cutoff_len": 64, "tokenized_path": str(copy), **overrides})
        return prepare_datasets(cfg, tokenizer, template)

    first = prepare()
    assert (copy / "tuneforge_tokenized.json").is_file()
    _write(data, ["completely different answers now"] * 5)  # the saved copy wins over the changed data
    again = prepare()
    assert [s.input_ids for s in again.train] == [s.input_ids for s in first.train]
    assert again.stats["tokenized_copy"].endswith("tuneforge_tokenized.json")
    fresh = prepare(overwrite_cache=True)
    assert len(fresh.train) == 5 and "tokenized_copy" not in fresh.stats
    assert len(prepare().train) == 5  # the copy was replaced
