"""Finding datasets: dataset_info.json keys, files, directories, and misses that say where we looked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneforge.data.mixing import mix_records
from tuneforge.data.sources import DatasetConfigError, DatasetNotFound, check_ranking, resolve_dataset_sources

ROW = {"instruction": "q", "output": "a"}


def make_data_dir(root: Path) -> Path:
    data = root / "data"
    (data / "folder").mkdir(parents=True)
    (data / "identity.json").write_text(json.dumps([ROW]))
    (data / "folder" / "x.jsonl").write_text(json.dumps(ROW))
    (data / "folder" / "y.json").write_text(json.dumps([ROW]))
    (data / "dataset_info.json").write_text(json.dumps({
        "identity": {"file_name": "identity.json"},
        "alpaca_en_demo": {"file_name": "identity.json", "columns": {"prompt": "instruction"}, "num_samples": 5},
        "chats": {"file_name": "folder", "formatting": "sharegpt",
                  "tags": {"role_tag": "role", "content_tag": "content"}},
        "hub": {"hf_hub_url": "someone/some-data"},
        "pairs": {"file_name": "identity.json", "ranking": True},
    }))
    return data


def test_dataset_info_keys_resolve_against_the_config_dir(tmp_path, monkeypatch):
    make_data_dir(tmp_path)
    monkeypatch.chdir(tmp_path.parent)  # the config dir, not the cwd, holds the data
    identity, demo, chats = resolve_dataset_sources("identity, alpaca_en_demo,chats", "data", tmp_path)
    assert identity.files == [tmp_path / "data" / "identity.json"] and identity.formatting is None
    assert demo.formatting == "alpaca" and demo.num_samples == 5
    assert chats.files == [tmp_path / "data" / "folder" / "x.jsonl", tmp_path / "data" / "folder" / "y.json"]
    assert chats.tags == {"role_tag": "role", "content_tag": "content"}


def test_file_paths_and_split_directories(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    split = tmp_path / "medicalqa"
    split.mkdir()
    for name in ("train.jsonl", "valid.jsonl", "test.jsonl"):
        (split / name).write_text(json.dumps(ROW))
    (tmp_path / "one.jsonl").write_text(json.dumps(ROW))
    directory, single = resolve_dataset_sources(["medicalqa", str(tmp_path / "one.jsonl")], "data", None)
    assert directory.files == [split / "train.jsonl"] and directory.eval_files == [split / "valid.jsonl"]
    assert single.files == [tmp_path / "one.jsonl"]


def test_a_miss_lists_every_place_and_the_closest_names(tmp_path, monkeypatch):
    make_data_dir(tmp_path / "conf")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    with pytest.raises(DatasetNotFound) as caught:
        resolve_dataset_sources("identty", "data", tmp_path / "conf")
    message = str(caught.value)
    for place in (tmp_path / "conf" / "data" / "dataset_info.json", work / "data" / "dataset_info.json",
                  tmp_path / "conf" / "identty", work / "identty", tmp_path / "conf" / "data" / "identty"):
        assert str(place) in message
    assert "(closest first): identity," in message


def test_hub_entries_are_refused_and_ranking_entries_read_only_by_pairwise_stages(tmp_path):
    make_data_dir(tmp_path)
    with pytest.raises(DatasetConfigError, match="hub datasets need network access; download it and point "
                                                 "file_name at it"):
        resolve_dataset_sources("hub", "data", tmp_path)
    (pairs,) = resolve_dataset_sources("pairs", "data", tmp_path)
    assert pairs.ranking
    check_ranking(pairs, "preference")
    with pytest.raises(ValueError, match=r"ranking: true .* only stages rm and dpo train on"):
        check_ranking(pairs, "chat")


def test_missing_file_name_target(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "dataset_info.json").write_text(json.dumps({"gone": {"file_name": "gone.json"}}))
    with pytest.raises(DatasetNotFound, match=r"gone\.json"):
        resolve_dataset_sources("gone", "data", tmp_path)


def test_mixing_strategies():
    big, small = list(range(100)), ["s"] * 10
    assert mix_records([big, small], "concat").counts == [100, 10]
    under = mix_records([big, small], "interleave_under")
    assert under.counts == [11, 10] and under.records[:4] == [0, "s", 1, "s"]
    over = mix_records([big, small], "interleave_over")
    assert over.counts == [100, 99]


def test_mixing_by_probabilities_follows_the_ratio():
    domain, general = list(range(10_000)), list(range(10_000))
    mixed = mix_records([domain, general], "interleave_under", [0.7, 0.3], seed=3)
    share = mixed.counts[1] / sum(mixed.counts)
    assert abs(share - 0.3) < 0.03
    assert mix_records([domain, general], "interleave_under", [0.7, 0.3], seed=3) == mixed
    with pytest.raises(ValueError, match="interleave_probs: 1 values for 2 datasets"):
        mix_records([domain, general], "interleave_under", [1.0])
