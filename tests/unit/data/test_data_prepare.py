"""prepare_datasets: from a config to tokenised train / eval samples with statistics."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.fixtures.tiny import build_tokenizer
from tuneforge.data.packing import PackedSample
from tuneforge.data.prepare import prepare_datasets
from tuneforge.data.records import DatasetError
from tuneforge.data.templates import get_template
from tuneforge.data.tokenize import count_trained


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def config(**overrides) -> SimpleNamespace:
    values = {"stage": "sft", "dataset": "qa", "eval_dataset": None, "dataset_dir": "data", "cutoff_len": 128,
              "max_samples": None, "val_size": 0.0, "packing": None, "neat_packing": False,
              "mix_strategy": "concat", "interleave_probs": None, "seed": 0, "train_on_prompt": False,
              "mask_history": False, "default_system": None}
    values.update(overrides)
    return SimpleNamespace(**values)


def make_project(root: Path) -> Path:
    data = root / "data"
    data.mkdir()
    qa = [{"instruction": f"What is {i} plus 1?", "output": f"It is {i + 1}."} for i in range(40)]
    (data / "qa.json").write_text(json.dumps(qa, indent=2))
    chats = [{"messages": [{"role": "user", "content": "Who are you?"},
                           {"role": "assistant", "content": "I am Forge."}]} for _ in range(10)]
    (data / "chats.jsonl").write_text("\n".join(json.dumps(row) for row in chats))
    (data / "docs.jsonl").write_text("\n".join(json.dumps({"text": "The capital of France is Paris. " * 3})
                                               for _ in range(20)))
    (data / "dataset_info.json").write_text(json.dumps({
        "qa": {"file_name": "qa.json"}, "chats": {"file_name": "chats.jsonl", "formatting": "sharegpt"},
        "docs": {"file_name": "docs.jsonl", "columns": {"prompt": "text"}},
    }))
    return root


def test_sft_with_validation_split_and_stats(tmp_path, tokenizer):
    project = make_project(tmp_path)
    template = get_template("chatml", tokenizer)
    seen = []
    data = prepare_datasets(config(dataset="qa,chats", val_size=0.1, max_samples=30), tokenizer, template,
                            config_dir=project, on_progress=lambda *args: seen.append(args))
    assert (data.stats["n_train"], data.stats["n_eval"]) == (36, 4)
    assert data.stats["datasets"] == {"qa": 30, "chats": 10}
    assert data.stats["trained_tokens"] == sum(count_trained(s.labels) for s in data.train)
    assert data.stats["tokens"] == sum(len(s.input_ids) for s in data.train)
    assert data.stats["truncated"] == 0 and data.stats["dropped"] == 0
    assert seen and seen[-1][0].startswith("tokenize")
    again = prepare_datasets(config(dataset="qa,chats", val_size=0.1, max_samples=30), tokenizer, template,
                             config_dir=project)
    assert [s.input_ids for s in again.eval] == [s.input_ids for s in data.eval]  # same seed, same split


def test_directory_valid_file_is_the_eval_set(tmp_path, tokenizer, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "medicalqa"
    folder.mkdir()
    (folder / "train.jsonl").write_text("\n".join(json.dumps({"instruction": "q", "output": "a"}) for _ in range(5)))
    (folder / "valid.jsonl").write_text(json.dumps({"instruction": "q2", "output": "a2"}))
    data = prepare_datasets(config(dataset="medicalqa", val_size=0.5), tokenizer,
                            get_template("qwen", tokenizer), config_dir=None)
    assert (data.stats["n_train"], data.stats["n_eval"]) == (5, 1)
    assert data.stats["val_size_ignored"]


def test_packing_and_dropped_samples(tmp_path, tokenizer):
    project = make_project(tmp_path)
    template = get_template("chatml", tokenizer)
    packed = prepare_datasets(config(dataset="chats", packing=True, cutoff_len=64), tokenizer, template,
                              config_dir=project)
    assert all(isinstance(row, PackedSample) for row in packed.train)
    assert packed.stats["packed_rows"] == len(packed.train) < 10
    assert sum(row.num_samples for row in packed.train) == 10
    tiny = prepare_datasets(config(dataset="chats", cutoff_len=4), tokenizer, template, config_dir=project)
    assert tiny.stats["truncated"] == 10 and all(count_trained(s.labels) > 0 for s in tiny.train)


def test_pretraining_packs_by_default(tmp_path, tokenizer):
    project = make_project(tmp_path)
    data = prepare_datasets(config(stage="pt", dataset="docs", cutoff_len=32), tokenizer, None, config_dir=project)
    assert all(len(s.input_ids) == 32 for s in data.train[:-1])
    assert data.stats["tokens"] == data.stats["trained_tokens"]
    neat = prepare_datasets(config(stage="pt", dataset="docs", cutoff_len=64, neat_packing=True), tokenizer, None,
                            config_dir=project)
    assert all(isinstance(row, PackedSample) for row in neat.train)


def test_bad_rows_in_any_file_fail_with_all_problems(tmp_path, tokenizer):
    project = make_project(tmp_path)
    (project / "data" / "qa.json").write_text('[\n{"instruction": "q"},\n{"instruction": "q", "output": ""}\n]')
    with pytest.raises(DatasetError) as caught:
        prepare_datasets(config(), tokenizer, get_template("chatml", tokenizer), config_dir=project)
    assert [p.line for p in caught.value.problems] == [2, 3]


def test_works_with_the_training_config_schema(tmp_path, tokenizer):
    schemas = pytest.importorskip("tuneforge.schemas")
    project = make_project(tmp_path)
    cfg = schemas.TrainingConfig(model_name_or_path="tiny", output_dir=str(tmp_path / "out"), stage="sft",
                                 dataset="qa,chats", mix_strategy="interleave_under",
                                 interleave_probs="0.5,0.5", cutoff_len=128)
    data = prepare_datasets(cfg, tokenizer, get_template("chatml", tokenizer), config_dir=project)
    assert data.stats["n_train"] == sum(data.stats["datasets"].values())
