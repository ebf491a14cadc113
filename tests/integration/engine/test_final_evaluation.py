"""do_eval decides the final evaluation (unset: when there is validation data), and the token metrics
transformers names appear in the results only when asked for."""

from __future__ import annotations

import pytest

from tests.integration.engine.conftest import base_config, run_in_process


def _completed(tmp_path, tiny_model_dir, memorise_file, **overrides):
    config = base_config(tiny_model_dir, memorise_file, tmp_path / "out", max_steps=2, val_size=2, **overrides)
    _, events = run_in_process(tmp_path / "run", config)
    assert events[-1]["type"] == "completed", events[-1]
    return events


def test_do_eval_decides_the_final_evaluation(tmp_path, tiny_model_dir, memorise_file):
    unset = _completed(tmp_path / "unset", tiny_model_dir, memorise_file)
    off = _completed(tmp_path / "off", tiny_model_dir, memorise_file, do_eval=False)
    assert [e["step"] for e in unset if e["type"] == "eval"] == [2] and "eval_loss" in unset[-1]["metrics"]
    assert not [e for e in off if e["type"] == "eval"] and "eval_loss" not in off[-1]["metrics"]
    (evaluation,) = [e for e in unset if e["type"] == "eval"]  # the console's perplexity chart reads this figure
    assert evaluation["metrics"]["eval_perplexity"] == pytest.approx(evaluation["perplexity"], rel=1e-6)


def test_trainer_metrics_named_as_transformers_does(tmp_path, tiny_model_dir, memorise_file):
    plain = _completed(tmp_path / "plain", tiny_model_dir, memorise_file)[-1]["metrics"]
    asked = _completed(tmp_path / "asked", tiny_model_dir, memorise_file, include_num_input_tokens_seen=True,
                       include_effective_tokens_per_second=True)[-1]["metrics"]
    assert "num_input_tokens_seen" not in plain and "effective_tokens_per_sec" not in plain
    assert asked["num_input_tokens_seen"] == asked["tokens_seen"] > 0 and asked["effective_tokens_per_sec"] > 0
