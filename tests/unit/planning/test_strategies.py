"""DeepSpeed ZeRO and FSDP2: presets and LLaMA-Factory's file names, config files checked like any input, the
refusals, and memory per device under each strategy against the ZeRO paper's accounting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.planning.test_estimate import LLAMA2_7B
from tuneforge.planning.capabilities import DataFacts, capability_problems
from tuneforge.planning.devices import Device
from tuneforge.planning.estimate import estimate_training
from tuneforge.planning.host import HostFacts
from tuneforge.planning.strategy import canonical_deepspeed, deepspeed_file_problems
from tuneforge.schemas import TrainingConfig, parse_training_config
from tuneforge.schemas.strategies import DEEPSPEED_PRESETS, deepspeed_preset_config, sharding_of

GIB = 1024**3
A100S = [Device(i, "cuda", "NVIDIA A100-SXM4-80GB", 80 * GIB, 79 * GIB, compute_capability=(8, 0))
         for i in range(8)]
GPU_HOST = HostFacts(A100S[:2], frozenset({"deepspeed", "bitsandbytes"}))
CPU_HOST = HostFacts([Device(0, "cpu", "test CPU", 16 * GIB, 12 * GIB)], frozenset({"deepspeed"}))
PSI = LLAMA2_7B.num_parameters


def problems(host: HostFacts, **values: object) -> dict[str, str]:
    cfg = parse_training_config({"model_name_or_path": "/models/m", "dataset": "d.jsonl", **values})
    found = capability_problems(cfg, host, DataFacts(model_is_local=True, context_length=4096))
    if not any(p.field == "deepspeed" for p in found):  # as the planner does, once path and host passed
        found += deepspeed_file_problems(cfg)
    return {p.field: p.message for p in found}


def full_7b(**values: object) -> TrainingConfig:
    return TrainingConfig.model_validate({"model_name_or_path": "m", "finetuning_type": "full", "bf16": True,
                                          "per_device_train_batch_size": 1, "cutoff_len": 512,
                                          "gradient_checkpointing": True, **values})


def model_states(cfg: TrainingConfig, devices: list[Device]) -> float:
    memory = estimate_training(cfg, LLAMA2_7B, devices, 1000, 512).memory
    return (memory.weights + memory.gradients + memory.optimizer_state) / PSI


@pytest.mark.parametrize("value", ["z3", "examples/deepspeed/ds_z3_config.json", "ds_z3_config.json"])
def test_a_preset_or_llamafactorys_file_name_becomes_the_preset(tmp_path: Path, value: str) -> None:
    assert canonical_deepspeed({"deepspeed": value}, tmp_path, None)["deepspeed"] == "z3"
    assert canonical_deepspeed({"deepspeed": value}, None, [tmp_path])["deepspeed"] == "z3"


def test_an_existing_file_of_that_name_is_read_as_a_file(tmp_path: Path) -> None:
    (tmp_path / "ds_z3_config.json").write_text(json.dumps({"zero_optimization": {"stage": 2}}))
    assert canonical_deepspeed({"deepspeed": "ds_z3_config.json"}, tmp_path, None)["deepspeed"] == \
        "ds_z3_config.json"
    assert sharding_of(str(tmp_path / "ds_z3_config.json"), None).gradients
    assert not sharding_of(str(tmp_path / "ds_z3_config.json"), None).weights  # the file says stage 2


@pytest.mark.parametrize(("content", "said"), [
    ("{not json", "is not a JSON file"),
    ("[1, 2]", "not a DeepSpeed config object"),
    ('{"zero_optimization": {"stage": 5}}', "stages 0, 1, 2 and 3"),
    ('{"zero_optimization": 3}', "zero_optimization must be an object"),
    ('{"zero_optimization": {"stage": 3, "offload_param": "cpu"}}', "offload_param must be an object"),
    ("x" * (1024 * 1024 + 1), "larger than 1024 KiB"),
])
def test_a_bad_config_file_is_refused_naming_the_field(tmp_path: Path, content: str, said: str) -> None:
    path = tmp_path / "ds.json"
    path.write_text(content)
    found = problems(GPU_HOST, deepspeed=str(path))
    assert said in found["deepspeed"] and "preset" in found["deepspeed"]


def test_a_device_file_is_not_read() -> None:
    """/dev/zero reports size 0 and never ends: only regular files are read, and only up to the limit."""
    assert "not a regular file" in problems(GPU_HOST, deepspeed="/dev/zero")["deepspeed"]


def test_an_absolute_path_is_always_a_file(tmp_path: Path) -> None:
    value = str(tmp_path / "nowhere" / "ds_z3_config.json")
    assert canonical_deepspeed({"deepspeed": value}, tmp_path, None)["deepspeed"] == value


def test_zero3_file_with_qlora_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ds.json"
    path.write_text(json.dumps({"zero_optimization": {"stage": 3}}))
    assert "ZeRO-2" in problems(GPU_HOST, deepspeed=str(path), quantization_bit=4)["deepspeed"]
    assert problems(GPU_HOST, deepspeed=str(path)) == {}


def test_strategies_need_a_gpu_and_fsdp_excludes_deepspeed() -> None:
    assert "NVIDIA GPU" in problems(CPU_HOST, fsdp="full_shard")["fsdp"]
    assert "NVIDIA GPU" in problems(CPU_HOST, deepspeed="z2")["deepspeed"]
    assert "choose one" in problems(GPU_HOST, fsdp="full_shard", deepspeed="z2")["fsdp"]
    assert "z2" in problems(GPU_HOST, deepspeed="z3", quantization_bit=4)["deepspeed"]
    assert "deepspeed z2" in problems(GPU_HOST, fsdp="full_shard", quantization_bit=4)["fsdp"]
    assert "deepspeed z2" in problems(GPU_HOST, fsdp="shard_grad_op", quantization_bit=8)["fsdp"]
    assert problems(GPU_HOST, deepspeed="z2", quantization_bit=4) == {}
    assert "use bf16" in problems(GPU_HOST, deepspeed="z2", pure_bf16=True)["deepspeed"]
    assert "optim adamw_torch" in problems(GPU_HOST, deepspeed="z3_offload", optim="sgd")["deepspeed"]
    assert problems(GPU_HOST, deepspeed="z3", optim="sgd") == {}  # only offload swaps in DeepSpeed's CPU Adam
    assert "deepspeed" in problems(HostFacts(A100S[:1], frozenset()), deepspeed="z2")["deepspeed"]  # not installed


def test_memory_per_device_follows_the_zero_papers_accounting() -> None:
    """Rajbhandari et al.: mixed-precision Adam keeps 16 bytes per parameter (2 weights, 2 gradients, 12
    optimizer); ZeRO-2 leaves 2Ψ + 14Ψ/N per device and ZeRO-3 16Ψ/N. DDP under the Trainer keeps fp32 weights
    and gradients instead (autocast), plus the all-reduce's bucket copy."""
    eight = A100S
    ddp = model_states(full_7b(), eight)
    zero2 = model_states(full_7b(deepspeed="z2"), eight)
    zero3 = model_states(full_7b(deepspeed="z3"), eight)
    assert ddp == pytest.approx(4 + 8 + 8, rel=0.01)  # fp32 weights, gradients + DDP's bucket copy, AdamW
    assert zero2 == pytest.approx(2 + 14 / 8, rel=0.01)
    gathered = 2 * LLAMA2_7B.block_parameters * 2 / PSI
    assert zero3 - gathered == pytest.approx(16 / 8, rel=0.01)
    assert model_states(full_7b(fsdp="full_shard"), eight) < ddp / 6
    offload = estimate_training(full_7b(deepspeed="z3_offload"), LLAMA2_7B, eight, 1000, 512).memory
    assert offload.optimizer_state == 0 and offload.weights / PSI == pytest.approx(gathered)


def test_the_estimate_names_the_strategy_and_suggests_zero3_when_ddp_does_not_fit() -> None:
    four = A100S[:4]
    ddp = estimate_training(full_7b(), LLAMA2_7B, four, 1000, 512)
    assert not ddp.fits and any("deepspeed: z3" in note for note in ddp.notes)
    zero3 = estimate_training(full_7b(deepspeed="z3"), LLAMA2_7B, four, 1000, 512)
    assert zero3.fits
    assert any("ZeRO-3 (z3) over 4 devices: each holds 1/4 of the weights, gradients, optimizer state" in note
               for note in zero3.notes)


def test_presets_are_deepspeed_configs_the_trainer_fills_in() -> None:
    for name, preset in DEEPSPEED_PRESETS.items():
        config = deepspeed_preset_config(name)
        json.dumps(config)
        assert config["zero_optimization"]["stage"] == preset.stage
        assert config["train_micro_batch_size_per_gpu"] == "auto" and config["bf16"]["enabled"] == "auto"
        assert ("offload_param" in config["zero_optimization"]) is preset.offload_weights
    assert config["fp16"]["loss_scale"] == 0  # dynamic loss scaling under fp16
