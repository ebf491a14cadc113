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


@pytest.mark.parametrize(("mode", "reshard", "offload"), [
    ("full_shard", True, False), ("shard_grad_op", False, False), ("full_shard_offload", True, True),
])
def test_fsdp_reaches_the_trainer_as_fsdp2_with_its_own_checkpointing(tmp_path, mode, reshard, offload):
    args = _args(tmp_path, fsdp=mode, gradient_checkpointing=True)
    assert args.fsdp and args.fsdp_config["version"] == 2
    assert args.fsdp_config["reshard_after_forward"] is reshard and args.fsdp_config["cpu_offload"] is offload
    assert args.fsdp_config["activation_checkpointing"] is True and args.activation_checkpointing is False


def test_a_deepspeed_preset_becomes_its_config_and_a_file_stays_a_path():
    from tuneforge.engine.strategies import strategy_arguments

    def cfg(value):
        return parse_training_config({"model_name_or_path": "tiny", "dataset": ["unused.jsonl"], "deepspeed": value})

    assert strategy_arguments(cfg("z3_offload"), False)["deepspeed"]["zero_optimization"]["stage"] == 3
    assert strategy_arguments(cfg("/configs/ds.json"), False) == {"deepspeed": "/configs/ds.json"}
    assert strategy_arguments(parse_training_config({"model_name_or_path": "tiny", "dataset": ["u.jsonl"]}),
                              True) == {}


@pytest.mark.parametrize(("settings", "available", "keeps"), [
    ({}, 2**40, True),
    ({"deepspeed": "z2"}, 2**40, True),  # ZeRO-2: every rank holds the whole weights
    ({"deepspeed": "z3"}, 2**40, False),  # a rank holds only its shard of the weights
    ({"fsdp": "shard_grad_op"}, 2**40, False),  # FSDP2 parameters are shards (DTensors) in every mode
    ({}, 1000, False),  # two copies would not fit the host's free memory
])
def test_the_divergence_guard_keeps_weight_copies_only_where_they_are_whole_and_fit(monkeypatch, settings,
                                                                                     available, keeps):
    import psutil
    import torch

    from tuneforge.engine.training import guard_keeps_weights

    monkeypatch.setattr(psutil, "virtual_memory", lambda: type("Memory", (), {"available": available})())
    cfg = parse_training_config({"model_name_or_path": "tiny", "dataset": ["u.jsonl"], **settings})
    assert guard_keeps_weights(cfg, torch.nn.Linear(64, 64)) is keeps
