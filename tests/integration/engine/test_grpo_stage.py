"""GRPO through the worker on the tiny model: a trivially learnable grader's reward rises, every sampled completion
is written with its score, and a grader that fails scores 0 with its reason while the run goes on."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.integration.engine.conftest import base_config, run_in_process

# Rewards the share of the letter "e" in the answer: a random model writes ~7%; the policy can raise it freely.
LETTER_E = {"type": "python", "name": "letter_e",
            "source": "def grade(sample, item):\n    text = sample['output_text']\n"
                      "    return text.count('e') / max(1, len(text))\n"}


def _prompts(tmp_path: Path, n: int = 32) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("\n".join(json.dumps({"instruction": f"Say something {i}.", "answer": "e"}) for i in range(n))
                    + "\n", encoding="utf-8")
    return path


def _grpo(tmp_path: Path, model: Path, rewards: list[dict[str, Any]], steps: int) -> tuple[int, list[dict]]:
    config = base_config(model, _prompts(tmp_path), tmp_path / "out", stage="grpo", rewards=rewards,
                         num_generations=4, max_new_tokens=16, temperature=1.0, top_p=1.0, top_k=0,
                         per_device_train_batch_size=8, max_steps=steps, learning_rate=1e-2,
                         finetuning_type="full")
    return run_in_process(tmp_path / "run", config)


def _rewards(events: list[dict[str, Any]]) -> list[float]:
    return [e["metrics"]["reward"] for e in events if e["type"] == "progress" and "reward" in (e.get("metrics") or {})]


def test_reward_rises_on_a_learnable_grader(tmp_path: Path, tiny_model_dir: Path) -> None:
    code, events = _grpo(tmp_path, tiny_model_dir, [{"grader": LETTER_E, "weight": 1.0}], steps=40)
    assert code == 0 and events[-1]["type"] == "completed", events[-1]
    rewards = _rewards(events)
    assert len(rewards) == 40
    first, last = sum(rewards[:8]) / 8, sum(rewards[-8:]) / 8
    assert last > 2 * first, rewards
    lines = [json.loads(line) for line in (tmp_path / "run" / "completions.jsonl").read_text().splitlines()]
    assert {line["step"] for line in lines} == set(range(1, 41))
    sample = lines[-1]
    text = sample["completion"]
    assert sample["scores"]["letter_e"] == text.count("e") / max(1, len(text))


def test_a_failing_grader_scores_zero_with_its_reason(tmp_path: Path, tiny_model_dir: Path) -> None:
    broken = {"type": "python", "name": "broken", "source": "def grade(sample, item):\n    return 1 / 0\n"}
    code, events = _grpo(tmp_path, tiny_model_dir, [{"grader": broken}, {"grader": LETTER_E, "weight": 0.5}],
                         steps=2)
    assert code == 0 and events[-1]["type"] == "completed", events[-1]
    line = json.loads((tmp_path / "run" / "completions.jsonl").read_text().splitlines()[0])
    assert line["scores"]["broken"] == 0.0
    assert "ZeroDivisionError" in line["reasons"]["broken"]
    assert line["reward"] == 0.5 * line["scores"]["letter_e"]


def test_grpo_settings_reach_the_trainer(tmp_path: Path, tiny_model_dir: Path) -> None:
    """Each GRPO setting is what TRL's trainer runs with (a setting dropped on the way would leave TRL's default)."""
    from tuneforge.engine.precision import choose_precision
    from tuneforge.engine.stages import grpo
    from tuneforge.engine.training import _prepare, training_arguments
    from tuneforge.rundir import RunDir
    from tuneforge.schemas import parse_training_config

    config = base_config(tiny_model_dir, _prompts(tmp_path), tmp_path / "out", stage="grpo",
                         rewards=[{"grader": LETTER_E, "weight": 0.25}], num_generations=2, max_new_tokens=7,
                         temperature=0.7, top_p=0.8, top_k=3, kl_coef=0.05, grpo_loss="dr_grpo",
                         per_device_train_batch_size=4)
    cfg = parse_training_config(config)
    precision = choose_precision(cfg)
    prepared = _prepare(cfg, None, precision)
    from tuneforge.engine.stages.base import TrainerInputs
    from tuneforge.engine.trainer import TokenCounter

    args = training_arguments(cfg, RunDir(tmp_path / "run"), precision, has_eval=False)
    trainer = grpo.build_trainer(TrainerInputs(cfg, prepared.model, prepared.tokenizer, args, prepared.data,
                                               TokenCounter(), precision, callbacks=[]))
    assert trainer.num_generations == 2 and trainer.max_completion_length == 7
    assert (trainer.temperature, trainer.top_p, trainer.top_k) == (0.7, 0.8, 3)
    assert trainer.beta == 0.05 and trainer.loss_type == "dr_grpo"
    assert trainer.reward_func_names == ["letter_e"] and trainer.reward_weights.tolist() == [0.25]


def test_an_evaluation_scores_the_runs_answers_as_the_run_did(tmp_path: Path, tiny_model_dir: Path) -> None:
    """The same grader, the same answers and rows: the evaluation's grading gives each answer the score the GRPO
    reward gave it during training."""
    from tuneforge.engine.evaluate import grade_answers
    from tuneforge.schemas.eval_spec import EvalSample, EvalSpec

    words = {"type": "text_similarity", "name": "words", "input": "{{sample.output_text}}",
             "reference": "{{item.answer}} e e e", "evaluation_metric": "fuzzy_match"}
    code, events = _grpo(tmp_path, tiny_model_dir, [{"grader": LETTER_E}, {"grader": words}], steps=2)
    assert code == 0, events[-1]
    lines = [json.loads(line) for line in (tmp_path / "run" / "completions.jsonl").read_text().splitlines()]
    def row(prompt: str) -> dict[str, str]:  # the prompt's dataset row, as _prompts wrote it
        number = re.search(r"Say something (\d+)\.", prompt)
        assert number is not None
        return {"instruction": f"Say something {number.group(1)}.", "answer": "e"}

    samples = [EvalSample(index=k, prompt="", reference="", item=row(line["prompt"])) for k, line in enumerate(lines)]
    spec = EvalSpec(models=[{"label": "run", "base_model": str(tiny_model_dir)}], dataset="x",
                    graders=[LETTER_E, words])
    graded = grade_answers(spec, [line["completion"] for line in lines], samples)
    for line, scores in zip(lines, graded.per_sample, strict=True):
        assert scores["graders"] == line["scores"]
