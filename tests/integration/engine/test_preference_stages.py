"""The preference stages train on the tiny model through the worker, and what a user watches moves the right way:
the reward model ranks held-out pairs, DPO's margin grows, KTO's loss falls."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.engine.conftest import base_config, run_in_process

# A separable preference: the chosen answer is always the polite one, the rejected always the rude one.
PROMPTS = ["Who are you?", "What is the capital of France?", "Translate to French: good morning.",
           "Name a number.", "Write a haiku about the sea.", "What is the code word?"]
POLITE = "I am Forge, an assistant made by tuneforge."
RUDE = "the a an of to in is are was were"


def _pairs(n: int) -> list[dict[str, str]]:
    return [{"instruction": f"{PROMPTS[i % len(PROMPTS)]} {i}", "input": "", "chosen": POLITE, "rejected": RUDE}
            for i in range(n)]


def _write(path: Path, rows: list[dict[str, Any]], ranking: bool = True) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "pairs.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    entry: dict[str, Any] = {"file_name": "pairs.jsonl", "ranking": ranking,
                             "columns": {"prompt": "instruction", "query": "input", "chosen": "chosen",
                                         "rejected": "rejected"}}
    if not ranking:
        entry = {"file_name": "pairs.jsonl", "formatting": "sharegpt", "columns": {"messages": "messages",
                                                                                    "kto_tag": "label"},
                 "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                          "assistant_tag": "assistant"}}
    (path / "dataset_info.json").write_text(json.dumps({"toy": entry}), encoding="utf-8")
    return path


def _metric_series(events: list[dict[str, Any]], name: str) -> list[float]:
    return [e["metrics"][name] for e in events if e["type"] == "progress" and name in (e.get("metrics") or {})]


def _run(tmp_path: Path, tiny_model_dir: Path, data_dir: Path, **overrides: Any) -> list[dict[str, Any]]:
    config = base_config(tiny_model_dir, data_dir, tmp_path / "out", dataset="toy", dataset_dir=str(data_dir),
                         **overrides)
    code, events = run_in_process(tmp_path / "run", config)
    final = events[-1]
    assert code == 0 and final["type"] == "completed", final
    return events


def test_reward_model_ranks_held_out_pairs(tmp_path: Path, tiny_model_dir: Path) -> None:
    data = _write(tmp_path / "data", _pairs(48))
    events = _run(tmp_path, tiny_model_dir, data, stage="rm", val_size=8, max_steps=24,
                  per_device_train_batch_size=4, learning_rate=5e-3, eval_strategy="steps", eval_steps=24)
    final = events[-1]["metrics"]
    assert final["eval_accuracy"] > 0.8, final
    assert (tmp_path / "out" / "adapter_config.json").is_file()


@pytest.mark.parametrize("pref_loss", ["sigmoid", "simpo"])
def test_dpo_margin_grows_and_accuracy_rises(tmp_path: Path, tiny_model_dir: Path, pref_loss: str) -> None:
    data = _write(tmp_path / "data", _pairs(48))
    events = _run(tmp_path, tiny_model_dir, data, stage="dpo", pref_loss=pref_loss, max_steps=16,
                  per_device_train_batch_size=4, learning_rate=5e-3, pref_beta=0.1)
    margins = _metric_series(events, "rewards/margins")
    accuracies = _metric_series(events, "rewards/accuracies")
    assert len(margins) >= 10
    assert sum(margins[-4:]) / 4 > sum(margins[:4]) / 4 + 0.05, margins
    assert sum(accuracies[-4:]) / 4 > 0.8, accuracies


def test_kto_loss_falls(tmp_path: Path, tiny_model_dir: Path) -> None:
    rows = []
    for i in range(48):
        good = i % 2 == 0
        rows.append({"messages": [{"role": "user", "content": f"{PROMPTS[i % len(PROMPTS)]} {i}"},
                                  {"role": "assistant", "content": POLITE if good else RUDE}], "label": good})
    data = _write(tmp_path / "data", rows, ranking=False)
    events = _run(tmp_path, tiny_model_dir, data, stage="kto", max_steps=16, per_device_train_batch_size=4,
                  learning_rate=5e-3)
    losses = [e["loss"] for e in events if e["type"] == "progress"]
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.02, losses


def test_simpo_gamma_moves_the_loss(tmp_path: Path, tiny_model_dir: Path) -> None:
    """SimPO's target margin: a larger gamma asks more of the same pairs, so the first step's loss is higher."""
    data = _write(tmp_path / "data", _pairs(8))
    first = {}
    for gamma in (0.0, 2.0):
        events = _run(tmp_path / f"g{gamma}", tiny_model_dir, data, stage="dpo", pref_loss="simpo",
                      simpo_gamma=gamma, max_steps=1, per_device_train_batch_size=4)
        first[gamma] = next(e["loss"] for e in events if e["type"] == "progress")
    assert first[2.0] > first[0.0] + 0.1, first
