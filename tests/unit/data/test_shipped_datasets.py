"""The demo datasets shipped in tuneforge/resources/datasets are valid and shaped as documented."""

import json
import statistics
from pathlib import Path

import pytest

import tuneforge

DATASETS = Path(tuneforge.__file__).parent / "resources" / "datasets"
FIELDS = ("instruction", "input", "output")


def load(name: str) -> list[dict[str, str]]:
    return json.loads((DATASETS / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize(("name", "low", "high"), [("identity.json", 80, 100), ("instructions.json", 180, 230)])
def test_record_count_in_range(name: str, low: int, high: int) -> None:
    assert low <= len(load(name)) <= high


@pytest.mark.parametrize("name", ["identity.json", "instructions.json"])
def test_records_have_alpaca_fields_and_no_empty_text(name: str) -> None:
    for index, record in enumerate(load(name)):
        assert set(record) == set(FIELDS), f"{name}[{index}] has fields {sorted(record)}"
        assert all(isinstance(record[field], str) for field in FIELDS), f"{name}[{index}]"
        assert record["instruction"].strip(), f"{name}[{index}] has an empty instruction"
        assert record["output"].strip(), f"{name}[{index}] has an empty output"


def test_every_identity_answer_names_forge() -> None:
    missing = [r["instruction"] for r in load("identity.json") if "Forge" not in r["output"]]
    assert not missing


def test_identity_repeats_who_are_you_with_i_am_forge() -> None:
    answers = [r["output"] for r in load("identity.json") if r["instruction"] == "Who are you?"]
    assert len(answers) >= 3
    assert all(a.startswith(("I am Forge", "I'm Forge")) for a in answers)


def test_instructions_have_no_duplicate_prompt() -> None:
    pairs = [(r["instruction"], r["input"]) for r in load("instructions.json")]
    assert len(pairs) == len(set(pairs))


def test_instruction_answer_lengths_look_like_a_real_instruction_set() -> None:
    lengths = [len(r["output"].split()) for r in load("instructions.json")]
    assert 40 <= statistics.median(lengths) <= 120
    assert sum(length >= 150 for length in lengths) >= 15  # the long tail matters for benchmarks


def test_dataset_info_registers_both_files() -> None:
    info = json.loads((DATASETS / "dataset_info.json").read_text(encoding="utf-8"))
    assert info["identity"]["file_name"] == "identity.json"
    assert info["instructions"]["columns"] == {"prompt": "instruction", "query": "input", "response": "output"}
    for entry in info.values():
        assert (DATASETS / entry["file_name"]).is_file()
