"""`auto` training values: each rule gives the value a user would pick, with a reason they can read."""

from __future__ import annotations

import pytest

from tuneforge.modelref.shape import ModelShape
from tuneforge.planning.auto_values import AUTO_FIELDS, resolve_auto_values
from tuneforge.planning.devices import Device
from tuneforge.planning.estimate_formulas import SMOLLM2_135M
from tuneforge.schemas import ConfigError, parse_training_config

GIB = 1024**3
LLAMA2_7B = ModelShape("LlamaForCausalLM", "llama", 6_738_415_616, 4096, 32, 32, 32, 11008, 32000, False, 4096,
                       "float16")
CPU = [Device(0, "cpu", "test CPU", 16 * GIB, 12 * GIB)]
A10 = [Device(0, "cuda", "NVIDIA A10", 24 * GIB, 24 * GIB)]


def resolve(samples: int = 1000, mean: float = 200.0, shape: ModelShape = SMOLLM2_135M,
            devices: list[Device] = CPU, **raw: object) -> tuple[dict, dict]:
    values, choices = resolve_auto_values({"model_name_or_path": "bundled", **raw}, shape, devices, samples, mean)
    return values, {choice.field: choice for choice in choices}


@pytest.mark.parametrize(("method", "extra", "rate", "said"), [
    ("full", {}, 2e-5, "full: 2e-5 (the usual rate"),
    ("lora", {}, 1e-4, "LoRA: 1e-4 (the usual rate"),
    ("lora", {"quantization_bit": 4}, 1e-4, "QLoRA: 1e-4"),
    ("freeze", {}, 5e-5, "between full 2e-5 and LoRA 1e-4"),
])
def test_learning_rate_by_method(method: str, extra: dict, rate: float, said: str) -> None:
    values, choices = resolve(finetuning_type=method, learning_rate="auto", **extra)
    assert values["learning_rate"] == rate
    assert said in choices["learning_rate"].reason


def test_preference_training_takes_a_tenth() -> None:
    values, choices = resolve(stage="dpo", finetuning_type="lora", learning_rate="auto")
    assert values["learning_rate"] == pytest.approx(1e-5)
    assert "DPO" in choices["learning_rate"].reason


@pytest.mark.parametrize(("samples", "epochs"), [(5, 10), (20, 5), (40, 3), (5_000, 3), (10_000, 2), (100_000, 1),
                                                 (0, 3)])
def test_epochs_by_dataset_size(samples: int, epochs: int) -> None:
    values, choices = resolve(samples=samples, num_train_epochs="auto")
    assert values["num_train_epochs"] == epochs
    assert "OpenAI" in choices["num_train_epochs"].reason


def test_batch_is_the_largest_power_of_two_that_fits() -> None:
    # 7B LoRA fp16 on 24 GB with 256-token samples: 16 and 8 overflow, 4 fits
    values, choices = resolve(shape=LLAMA2_7B, devices=A10, mean=256, finetuning_type="lora", fp16=True,
                              cutoff_len=2048, per_device_train_batch_size="auto")
    assert values["per_device_train_batch_size"] == 4
    assert "fits" in choices["per_device_train_batch_size"].reason


def test_batch_caps_at_16_when_memory_is_plenty() -> None:
    values, _ = resolve(samples=10_000, mean=100, per_device_train_batch_size="auto")
    assert values["per_device_train_batch_size"] == 16


def test_batch_keeps_a_few_steps_per_epoch_on_a_tiny_set() -> None:
    values, choices = resolve(samples=10, per_device_train_batch_size="auto")
    assert values["per_device_train_batch_size"] == 2
    assert "4 steps" in choices["per_device_train_batch_size"].reason


def test_batch_one_when_nothing_fits_says_so() -> None:
    small = [Device(0, "cuda", "NVIDIA T4", 8 * GIB, 8 * GIB)]
    values, choices = resolve(shape=LLAMA2_7B, devices=small, finetuning_type="lora", fp16=True,
                              per_device_train_batch_size="auto")
    assert values["per_device_train_batch_size"] == 1
    assert "does not fit" in choices["per_device_train_batch_size"].reason


@pytest.mark.parametrize(("samples", "batch", "devices", "steps"), [
    (1_000, 8, 1, 2),  # global 16
    (10_000, 8, 1, 4),  # a large set: global 32
    (1_000, 4, 2, 2),  # 4 × 2 devices × 2 = 16
    (20, 4, 1, 1),  # 20 samples: a global batch of 16 would leave ~1 step an epoch
])
def test_accumulation_reaches_the_global_batch_target(samples: int, batch: int, devices: int, steps: int) -> None:
    gpus = [Device(i, "cuda", "NVIDIA A100-SXM4-80GB", 80 * GIB, 80 * GIB) for i in range(devices)]
    values, choices = resolve(samples=samples, devices=gpus, per_device_train_batch_size=batch,
                              gradient_accumulation_steps="auto")
    assert values["gradient_accumulation_steps"] == steps
    assert f"global batch {batch * devices * steps}" in choices["gradient_accumulation_steps"].reason


def test_all_four_resolve_into_a_valid_config_and_others_stay() -> None:
    raw = {field: "AUTO" for field in AUTO_FIELDS}
    values, choices = resolve(samples=91, mean=60, finetuning_type="lora", lora_rank=16, **raw)
    assert set(choices) == set(AUTO_FIELDS)
    assert values["lora_rank"] == 16
    cfg = parse_training_config(values)
    assert (cfg.num_train_epochs, cfg.learning_rate) == (3, 1e-4)
    assert cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps <= 91 // 4 + 1


def test_no_auto_returns_the_config_untouched() -> None:
    raw = {"model_name_or_path": "bundled", "learning_rate": 3e-4}
    values, choices = resolve_auto_values(raw, SMOLLM2_135M, CPU, 100, 50)
    assert values == raw and values is not raw and choices == []


def test_another_bad_field_is_reported_by_name() -> None:
    with pytest.raises(ConfigError, match="lora_rank"):
        resolve(lora_rank=0, learning_rate="auto")


@pytest.mark.parametrize(("devices", "value", "said"), [
    (CPU, "fp32", "no GPU"),
    ([Device(0, "cuda", "NVIDIA A10", 24 * GIB, 24 * GIB, compute_capability=(8, 6))], "bf16", "bf16 tensor cores"),
    ([Device(0, "cuda", "Tesla V100-SXM2-32GB", 32 * GIB, 32 * GIB, compute_capability=(7, 0))], "fp16",
     "dynamic loss scaling"),
])
def test_compute_type_auto_follows_the_devices(devices: list[Device], value: str, said: str) -> None:
    from tuneforge.planning.auto_values import resolve_compute_type

    raw, choices = resolve_compute_type({"model_name_or_path": "m", "compute_type": "auto"}, devices)
    assert raw["compute_type"] == value and choices[0].value == value and said in choices[0].reason
    cfg = parse_training_config({**raw, "dataset": "d.jsonl"})
    assert cfg.precision == value
    assert resolve_compute_type({"model_name_or_path": "m", "compute_type": "fp16"}, devices)[1] == []


def test_compute_type_auto_is_resolved_and_reported_by_the_planner(tmp_path) -> None:
    from tuneforge.planning.host import HostFacts
    from tuneforge.planning.planner import PlanInput, plan_training

    data = tmp_path / "d.jsonl"
    data.write_text('{"instruction": "Say hi.", "output": "hi"}\n' * 8)
    plan = plan_training(PlanInput({"model_name_or_path": "bundled", "dataset": str(data), "template": "chatml",
                                    "compute_type": "auto", "output_dir": str(tmp_path / "out")},
                                   HostFacts(CPU), models_cache=tmp_path / "models"))
    assert plan.cfg.precision == "fp32" and plan.auto_values[0]["field"] == "compute_type"
