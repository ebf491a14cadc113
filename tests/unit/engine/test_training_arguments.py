"""TrainingArguments follow torch_compile and ddp_find_unused_parameters (explicit value wins, unset = MoE only)."""

from __future__ import annotations

import pytest

from tuneforge.engine.precision import Precision
from tuneforge.engine.training import training_arguments
from tuneforge.rundir import RunDir
from tuneforge.schemas import parse_training_config


def _args(tmp_path, moe=False, **overrides):
    cfg = parse_training_config({"model_name_or_path": "tiny", "stage": "sft", "finetuning_type": "lora",
                                 "template": "chatml", "dataset": ["unused.jsonl"], "report_to": "none", **overrides})
    return training_arguments(cfg, RunDir(tmp_path / "run"), Precision("fp32", "cpu"), has_eval=False, moe=moe)


@pytest.mark.parametrize("compile_model", [False, True])
def test_torch_compile_is_passed_on(tmp_path, compile_model):
    assert _args(tmp_path, torch_compile=compile_model).torch_compile is compile_model


@pytest.mark.parametrize(("setting", "moe", "expected"), [
    (None, False, False), (None, True, True), (True, False, True), (False, True, False),
])
def test_ddp_find_unused_parameters(tmp_path, setting, moe, expected):
    assert _args(tmp_path, moe=moe, ddp_find_unused_parameters=setting).ddp_find_unused_parameters is expected
