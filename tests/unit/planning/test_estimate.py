"""The memory / time estimate gives the figures users know: seed 003's table, this project's CPU measurements."""

from __future__ import annotations

import json

import pytest

from tuneforge.modelref.shape import ModelShape
from tuneforge.planning.devices import Device
from tuneforge.planning.estimate import estimate_training
from tuneforge.planning.estimate_formulas import SMOLLM2_135M, available_cores
from tuneforge.schemas import TrainingConfig

GIB = 1024**3
LLAMA2_7B = ModelShape("LlamaForCausalLM", "llama", 6_738_415_616, 4096, 32, 32, 32, 11008, 32000, False, 4096,
                       "float16")
LLAMA3_70B = ModelShape("LlamaForCausalLM", "llama", 70_553_706_496, 8192, 80, 64, 8, 28672, 128256, False, 8192,
                        "bfloat16")
CPU = [Device(0, "cpu", "test CPU", 16 * GIB, 12 * GIB)]
A10 = [Device(0, "cuda", "NVIDIA A10", 24 * GIB, 23 * GIB)]
H100 = [Device(0, "cuda", "NVIDIA H100 80GB HBM3", 80 * GIB, 79 * GIB)]


def config(**values: object) -> TrainingConfig:
    return TrainingConfig.model_validate({"model_name_or_path": "m", **values})


def lora_7b(**values: object) -> TrainingConfig:
    return config(finetuning_type="lora", fp16=True, per_device_train_batch_size=4, cutoff_len=512, **values)


def test_llama2_7b_lora_fp16_fits_a_24gb_gpu_as_seed_003_says() -> None:
    estimate = estimate_training(lora_7b(), LLAMA2_7B, A10, 10_000, 512)
    assert estimate.fits
    assert 14 * GIB < estimate.memory.total < 20 * GIB  # seed 003: "LLaMA 2-7B ~16GB"
    assert 12 * GIB < estimate.memory.weights < 13 * GIB  # 16-bit frozen weights
    assert estimate.trainable_parameters == 8 * 32 * (4 * (4096 + 4096) + 3 * (4096 + 11008))  # r8, all linear


def test_llama3_70b_full_bf16_does_not_fit_one_80gb_gpu_and_says_by_how_much() -> None:
    cfg = config(finetuning_type="full", bf16=True, per_device_train_batch_size=1, cutoff_len=2048)
    estimate = estimate_training(cfg, LLAMA3_70B, H100, 10_000, 1024)
    assert not estimate.fits
    gib = 70_553_706_496 * 4 / GIB
    assert estimate.memory.weights / GIB == pytest.approx(gib)  # fp32 master weights
    assert estimate.memory.optimizer_state / GIB == pytest.approx(2 * gib)  # AdamW: two fp32 states
    assert estimate.memory.total > 1000 * GIB
    assert "does not fit" in estimate.summary() and "80.0 GiB" in estimate.summary()
    assert any("QLoRA" in note and "fit" in note for note in estimate.notes)


def test_bundled_lora_on_this_cpu_fits_and_trains_at_the_measured_rate() -> None:
    cfg = config(finetuning_type="lora", lora_rank=8, cutoff_len=512, per_device_train_batch_size=4)
    estimate = estimate_training(cfg, SMOLLM2_135M, CPU, 262, 123)
    assert estimate.fits
    assert 1 * GIB < estimate.memory.total < 3.5 * GIB  # measured peak RSS: 2.4 GB
    per_core = 190 / 2  # bench/train_throughput.py on 2 cores
    assert estimate.tokens_per_second == pytest.approx(per_core * available_cores(), rel=0.02)
    assert "190 tokens/s" in estimate.basis


def test_demo_time_is_close_to_the_measured_143_seconds() -> None:
    demo = config(finetuning_type="lora", lora_rank=16, lora_alpha=32, cutoff_len=256, per_device_train_batch_size=8,
                  num_train_epochs=4)
    estimate = estimate_training(demo, SMOLLM2_135M, CPU, 91, 60)
    measured = 143 * 2 / available_cores()  # the demo's run time on this project's 2-core machine
    assert measured / 3 < estimate.total_seconds < measured * 3
    assert estimate.steps_per_epoch == 12 and estimate.total_steps == 48  # ceil(91 / 8) steps, 4 epochs
    assert estimate.total_seconds == pytest.approx(4 * estimate.seconds_per_epoch, rel=0.01)


def test_qlora_holds_a_quarter_of_the_weights() -> None:
    lora = estimate_training(lora_7b(), LLAMA2_7B, A10, 1000, 512)
    qlora = estimate_training(lora_7b(quantization_bit=4), LLAMA2_7B, A10, 1000, 512)
    assert qlora.memory.weights < 0.35 * lora.memory.weights
    assert qlora.total_seconds > lora.total_seconds  # de-quantising costs time


def test_gradient_checkpointing_trades_activations_for_time() -> None:
    cfg = config(finetuning_type="full", bf16=True, per_device_train_batch_size=8, cutoff_len=4096)
    off = estimate_training(cfg, SMOLLM2_135M, H100, 1000, 4096)
    on = estimate_training(config(**{**cfg.model_dump(), "gradient_checkpointing": True}), SMOLLM2_135M, H100, 1000,
                           4096)
    assert on.memory.activations < off.memory.activations / 5
    assert on.total_seconds > 1.2 * off.total_seconds
    assert any("checkpointing off" in note for note in off.notes)


def test_two_gpus_halve_the_steps_and_keep_a_full_copy_each() -> None:
    one = estimate_training(lora_7b(), LLAMA2_7B, H100, 8000, 400)
    two_gpus = [*H100, Device(1, "cuda", "NVIDIA H100 80GB HBM3", 80 * GIB, 79 * GIB)]
    two = estimate_training(lora_7b(), LLAMA2_7B, two_gpus, 8000, 400)
    assert two.steps_per_epoch == one.steps_per_epoch // 2
    assert two.memory.weights == one.memory.weights
    assert 0.5 < two.total_seconds / one.total_seconds < 0.6  # DDP costs ~10%
    assert any("DDP" in note for note in two.notes)


def test_max_steps_sets_the_total() -> None:
    estimate = estimate_training(lora_7b(max_steps=30), LLAMA2_7B, A10, 10_000, 512)
    assert estimate.total_steps == 30
    assert estimate.total_seconds == pytest.approx(estimate.seconds_per_epoch * 30 / 2500, rel=0.01)


def test_pretraining_packs_samples_into_cutoff_len_rows() -> None:
    cfg = config(stage="pt", finetuning_type="lora", cutoff_len=1024, per_device_train_batch_size=2)
    estimate = estimate_training(cfg, SMOLLM2_135M, H100, 1000, 256)  # 256k tokens → 250 rows of 1024
    assert estimate.steps_per_epoch == 125


def test_8bit_optimizer_and_liger_shrink_their_parts() -> None:
    cfg = dict(finetuning_type="full", bf16=True, per_device_train_batch_size=4, cutoff_len=1024)
    plain = estimate_training(config(**cfg), SMOLLM2_135M, A10, 1000, 800)
    lean = estimate_training(config(**cfg, optim="paged_adamw_8bit", enable_liger_kernel=True), SMOLLM2_135M, A10,
                             1000, 800)
    assert lean.memory.optimizer_state == plain.memory.optimizer_state // 4
    assert plain.memory.logits > 0 and lean.memory.logits == 0


def test_unknown_gpu_gets_a_conservative_throughput_and_says_so() -> None:
    odd = [Device(0, "cuda", "Some Future GPU", 48 * GIB, 48 * GIB)]
    estimate = estimate_training(lora_7b(), LLAMA2_7B, odd, 1000, 512)
    known = estimate_training(lora_7b(), LLAMA2_7B, A10, 1000, 512)
    assert "conservative default" in estimate.basis
    assert estimate.tokens_per_second < known.tokens_per_second


def test_estimate_is_json_for_the_api() -> None:
    dumped = estimate_training(lora_7b(), LLAMA2_7B, A10, 100, 300).model_dump(mode="json")
    assert json.loads(json.dumps(dumped))["memory"]["total"] > 0
    assert {"fits", "device_memory", "seconds_per_epoch", "tokens_per_second", "basis", "notes"} <= dumped.keys()


def test_freeze_trains_the_last_blocks_and_keeps_only_their_activations() -> None:
    frozen = estimate_training(config(finetuning_type="freeze", freeze_trainable_layers=2, bf16=True), LLAMA2_7B,
                               H100, 1000, 512)
    full = estimate_training(config(finetuning_type="full", bf16=True), LLAMA2_7B, H100, 1000, 512)
    block = (6_738_415_616 - 2 * 32000 * 4096 - 4096) // 32
    assert frozen.trainable_parameters == 2 * block
    assert frozen.memory.activations == pytest.approx(full.memory.activations * 2 / 32, rel=0.01)
    assert frozen.total_seconds < full.total_seconds / 2


def test_preference_pairs_double_the_tokens_not_the_steps() -> None:
    sft = estimate_training(lora_7b(), LLAMA2_7B, H100, 800, 300)
    dpo = estimate_training(lora_7b(stage="dpo"), LLAMA2_7B, H100, 800, 300)
    assert dpo.steps_per_epoch == sft.steps_per_epoch == 200
    assert dpo.tokens_per_epoch == 2 * sft.tokens_per_epoch
    assert dpo.total_seconds > 2 * sft.total_seconds  # and the reference model's forward pass


def test_each_stage_pays_for_what_it_holds() -> None:
    """A full DPO keeps a frozen reference copy (LoRA switches the adapter off instead); GRPO holds the key / value
    cache of its sampled answers and trains on num_generations answers per prompt."""
    sft = estimate_training(config(finetuning_type="full", bf16=True), LLAMA2_7B, H100, 1000, 256)
    dpo = estimate_training(config(finetuning_type="full", bf16=True, stage="dpo"), LLAMA2_7B, H100, 1000, 256)
    dpo_lora = estimate_training(lora_7b(stage="dpo"), LLAMA2_7B, H100, 1000, 256)
    assert dpo.memory.reference_model == LLAMA2_7B.num_parameters * 2 and sft.memory.reference_model == 0
    assert dpo_lora.memory.reference_model == 0
    assert dpo.memory.total - sft.memory.total >= dpo.memory.reference_model
    grpo = estimate_training(lora_7b(stage="grpo", num_generations=8, max_new_tokens=256), LLAMA2_7B, H100, 1000, 64)
    # 4 answers × (512 prompt + 256 new) tokens × 32 layers × keys and values × 32 heads × 128 × 2 bytes
    assert grpo.memory.generation_cache == 4 * 768 * 32 * 2 * 32 * 128 * 2
    assert grpo.tokens_per_epoch == 1000 * 8 * (64 + 256)
    assert any("sampling the answers is not in the time" in note for note in grpo.notes)
