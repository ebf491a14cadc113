"""PPO through the worker on the tiny model: the mean reward rises on a learnable grader, and an rm run's output
serves as the reward model, its value head saved beside the policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.integration.engine.conftest import base_config, run_in_process
from tests.integration.engine.test_grpo_stage import LETTER_E, _prompts
from tests.integration.engine.test_preference_stages import _pairs, _write


def _ppo(tmp_path: Path, model: Path, steps: int, **overrides: Any) -> tuple[int, list[dict[str, Any]]]:
    config = base_config(model, _prompts(tmp_path), tmp_path / "out", stage="ppo", max_new_tokens=16,
                         temperature=1.0, top_p=1.0, top_k=0, per_device_train_batch_size=8, max_steps=steps,
                         **{"learning_rate": 1e-2, "finetuning_type": "full", **overrides})
    return run_in_process(tmp_path / "run", config)


def _series(events: list[dict[str, Any]], name: str) -> list[float]:
    return [e["metrics"][name] for e in events if e["type"] == "progress" and name in (e.get("metrics") or {})]


def test_mean_reward_rises_over_the_run(tmp_path: Path, tiny_model_dir: Path) -> None:
    code, events = _ppo(tmp_path, tiny_model_dir, steps=40, rewards=[{"grader": LETTER_E}], kl_coef=0.01)
    assert code == 0 and events[-1]["type"] == "completed", events[-1]
    rewards = _series(events, "reward")
    assert len(rewards) == 40
    first, last = sum(rewards[:8]) / 8, sum(rewards[-8:]) / 8
    assert last > 1.6 * first, rewards
    assert _series(events, "kl") and _series(events, "value_loss")
    assert (tmp_path / "out" / "value_head.safetensors").is_file()


def test_an_rm_output_is_the_reward_model(tmp_path: Path, tiny_model_dir: Path) -> None:
    data = _write(tmp_path / "pairs", _pairs(16))
    rm = base_config(tiny_model_dir, data, tmp_path / "rm", stage="rm", dataset="toy", dataset_dir=str(data),
                     max_steps=2, per_device_train_batch_size=4)
    code, _ = run_in_process(tmp_path / "rm-run", rm)
    assert code == 0
    code, events = _ppo(tmp_path, tiny_model_dir, steps=2, reward_model=str(tmp_path / "rm"),
                        finetuning_type="lora")
    assert code == 0 and events[-1]["type"] == "completed", events[-1]
    line = json.loads((tmp_path / "run" / "completions.jsonl").read_text().splitlines()[0])
    assert set(line["scores"]) == {"reward_model"} and line["reward"] == line["scores"]["reward_model"]


def test_a_stopped_run_resumes_with_its_value_head(tmp_path: Path, tiny_model_dir: Path) -> None:
    from tests.integration.engine.conftest import StopAtStep

    config = base_config(tiny_model_dir, _prompts(tmp_path), tmp_path / "out", stage="ppo", max_new_tokens=8,
                         per_device_train_batch_size=4, max_steps=4, rewards=[{"grader": LETTER_E}])
    code, events = run_in_process(tmp_path / "run", config, stop=StopAtStep(2))
    assert events[-1]["type"] == "stopped", events[-1]
    checkpoint = tmp_path / "run" / "checkpoints" / "checkpoint-2"
    assert (checkpoint / "value_head.safetensors").is_file()
    code, events = run_in_process(tmp_path / "run", {**config, "resume_from_checkpoint": "last"})
    assert code == 0 and events[-1]["type"] == "completed" and events[-1]["step"] == 4, events[-1]
