"""`auto` training values, resolved when a task is created and stored with the reason for each.

The rules:
- learning_rate by method: full 2e-5 and LoRA / QLoRA 1e-4, freeze 5e-5 (it trains
  whole layers, like full, but only a few of them); DPO / KTO / PPO take a tenth of that, since preference
  training drifts from the reference model quickly at SFT rates.
- num_train_epochs by dataset size, the way OpenAI's fine-tuning API picks its default: 3 epochs, more for a tiny
  set so the model sees at least ~100 samples in all (at most 10 epochs, a common upper bound), fewer for a
  big one so it sees at most ~25,000 (at least 1).
- per_device_train_batch_size: the largest power of two ≤ 16 whose memory estimate fits the task's devices, and
  small enough that an epoch has at least 4 optimizer steps.
- compute_type (bf16 / fp16 / fp32, LLaMA-Factory's key for the precision flags): bf16 on GPUs with bf16
  tensor cores (compute capability 8.0, Ampere, or newer), fp16 with dynamic loss scaling on older GPUs, fp32 on
  CPUs (bf16 there is emulated and no faster).
- gradient_accumulation_steps: enough to make the global batch (batch × devices × accumulation) 16, or 32 for
  sets of 3,200+ samples (8–32 is the usual range), but never so large that an epoch has fewer than 4 steps.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel

from tuneforge.modelref.shape import ModelShape
from tuneforge.planning.devices import Device
from tuneforge.planning.estimate import estimate_training
from tuneforge.planning.estimate_formulas import GIB
from tuneforge.schemas import TrainingConfig, parse_training_config
from tuneforge.schemas.stages import stage_info
from tuneforge.schemas.training import COMPUTE_TYPE_KEY

AUTO_FIELDS = ("num_train_epochs", "per_device_train_batch_size", "gradient_accumulation_steps", "learning_rate")
LEARNING_RATES = {"full": 2e-5, "freeze": 5e-5, "lora": 1e-4}
DEFAULT_EPOCHS, MAX_EPOCHS = 3, 10
MIN_SAMPLES_SEEN, MAX_SAMPLES_SEEN = 100, 25_000
MAX_BATCH = 16
MIN_STEPS_PER_EPOCH = 4
LARGE_SET = 3_200  # samples from which the global batch target doubles (≥ 100 steps an epoch at 32)
# Stand-ins while the other auto values are worked out; none of them changes the memory estimate.
PROVISIONAL: dict[str, Any] = {"num_train_epochs": DEFAULT_EPOCHS, "per_device_train_batch_size": 1,
                               "gradient_accumulation_steps": 1, "learning_rate": 1e-4}


class AutoChoice(BaseModel):
    """One resolved `auto` value and why it was chosen."""

    field: str
    value: float | int | str
    reason: str


def is_auto(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() == "auto"


def resolve_auto_values(raw: dict[str, Any], shape: ModelShape, devices: list[Device], num_train_samples: int,
                        mean_sample_tokens: float) -> tuple[dict[str, Any], list[AutoChoice]]:
    """`raw` (canonical field names) with each "auto" of AUTO_FIELDS replaced by a number, and the choices made.

    Raises tuneforge.schemas.ConfigError when another field of `raw` is invalid (the estimate needs the config).
    """
    autos = [name for name in AUTO_FIELDS if is_auto(raw.get(name))]
    resolved = dict(raw)
    if not autos:
        return resolved, []
    cfg = parse_training_config({**raw, **{name: PROVISIONAL[name] for name in autos}})
    samples = max(num_train_samples, 0)
    choices: list[AutoChoice] = []
    if "num_train_epochs" in autos:
        choices.append(choose_epochs(samples, cfg.max_steps))
    if "per_device_train_batch_size" in autos:
        choices.append(choose_batch_size(cfg, shape, devices, samples, mean_sample_tokens))
        cfg = cfg.model_copy(update={"per_device_train_batch_size": choices[-1].value})
    if "gradient_accumulation_steps" in autos:
        choices.append(choose_accumulation(cfg.per_device_train_batch_size, len(devices), samples))
    if "learning_rate" in autos:
        choices.append(choose_learning_rate(cfg))
    resolved.update({choice.field: choice.value for choice in choices})
    return resolved, choices


def resolve_compute_type(raw: dict[str, Any], devices: list[Device]) -> tuple[dict[str, Any], list[AutoChoice]]:
    """`compute_type: auto` replaced by the precision the devices train best in, and that choice."""
    if not is_auto(raw.get(COMPUTE_TYPE_KEY)):
        return raw, []
    choice = choose_compute_type(devices)
    return {**raw, COMPUTE_TYPE_KEY: choice.value}, [choice]


def choose_compute_type(devices: list[Device]) -> AutoChoice:
    gpus = [d for d in devices if d.kind == "cuda"]
    if not gpus:
        return AutoChoice(field=COMPUTE_TYPE_KEY, value="fp32",
                          reason="no GPU: fp32 (bf16 on a CPU is emulated and no faster)")
    capability = min(d.compute_capability or (0, 0) for d in gpus)
    shown = ".".join(map(str, capability))
    if capability >= (8, 0):
        return AutoChoice(field=COMPUTE_TYPE_KEY, value="bf16",
                          reason=f"{gpus[0].name} (compute capability {shown}) has bf16 tensor cores: bf16 mixed "
                                 "precision, fp32's range without loss scaling")
    return AutoChoice(field=COMPUTE_TYPE_KEY, value="fp16",
                      reason=f"{gpus[0].name} (compute capability {shown}) has no bf16 tensor cores: fp16 mixed "
                             "precision with dynamic loss scaling")


def choose_learning_rate(cfg: TrainingConfig) -> AutoChoice:
    method = cfg.finetuning_type
    rate = LEARNING_RATES[method]
    name = "QLoRA" if method == "lora" and cfg.quantization_bit else {"lora": "LoRA"}.get(method, method)
    source = " (the usual rate for this method)" if method != "freeze" else " (between full 2e-5 and LoRA 1e-4)"
    reason = f"{name}: {_rate_text(rate)}{source}"
    if stage_info(cfg.stage).preference:
        rate /= 10
        reason += f"; ÷10 for {cfg.stage.upper()}, which drifts from its reference at SFT rates → {_rate_text(rate)}"
    return AutoChoice(field="learning_rate", value=rate, reason=reason)


def _rate_text(rate: float) -> str:
    return f"{rate:.0e}".replace("e-0", "e-")


def choose_epochs(samples: int, max_steps: int = -1) -> AutoChoice:
    if samples <= 0:
        epochs, why = DEFAULT_EPOCHS, "dataset size unknown: the usual 3"
    elif samples * DEFAULT_EPOCHS < MIN_SAMPLES_SEEN:
        epochs = min(MAX_EPOCHS, math.ceil(MIN_SAMPLES_SEEN / samples))
        why = f"a small set of {samples} samples: {epochs} passes so the model sees ~{MIN_SAMPLES_SEEN} samples"
    elif samples * DEFAULT_EPOCHS > MAX_SAMPLES_SEEN:
        epochs = max(1, MAX_SAMPLES_SEEN // samples)
        why = f"{samples:,} samples: {epochs} pass(es) keep training under ~{MAX_SAMPLES_SEEN:,} samples seen"
    else:
        epochs, why = DEFAULT_EPOCHS, f"{samples:,} samples: the usual 3 passes"
    if max_steps > 0:
        why += f" (max_steps {max_steps} is set and stops training first if it comes first)"
    return AutoChoice(field="num_train_epochs", value=epochs, reason=why + "; OpenAI's default rule")


def _power_of_two_at_most(limit: int) -> int:
    return 1 << max(int(limit), 1).bit_length() - 1


def choose_batch_size(cfg: TrainingConfig, shape: ModelShape, devices: list[Device], samples: int,
                      mean_sample_tokens: float) -> AutoChoice:
    cap = MAX_BATCH
    if samples:
        cap = min(cap, _power_of_two_at_most(samples // (MIN_STEPS_PER_EPOCH * len(devices))))
    batch = cap
    while True:
        estimate = estimate_training(cfg.model_copy(update={"per_device_train_batch_size": batch}), shape, devices,
                                     samples, mean_sample_tokens)
        if estimate.fits or batch == 1:
            break
        batch //= 2
    need, have = estimate.memory.total / GIB, estimate.device_memory / GIB
    if not estimate.fits:
        why = f"even 1 does not fit: it needs {need:.1f} GiB per device of {have:.1f} GiB"
    elif batch < cap:
        why = f"the largest power of two that fits: {need:.1f} GiB of {have:.1f} GiB per device"
    elif cap < MAX_BATCH:
        why = (f"{samples} samples on {len(devices)} device(s): at most {cap} keeps ≥ {MIN_STEPS_PER_EPOCH} steps "
               f"an epoch ({need:.1f} GiB of {have:.1f} GiB)")
    else:
        why = f"the {MAX_BATCH} cap fits: {need:.1f} GiB of {have:.1f} GiB per device"
    return AutoChoice(field="per_device_train_batch_size", value=batch, reason=why)


def choose_accumulation(batch: int, device_count: int, samples: int) -> AutoChoice:
    target = 32 if samples >= LARGE_SET else 16
    per_step = batch * device_count
    wanted = max(1, target // per_step)
    steps = min(wanted, max(1, samples // (MIN_STEPS_PER_EPOCH * per_step))) if samples else wanted
    why = f"global batch {per_step * steps} = {batch} per device × {device_count} device(s) × {steps}; target {target}"
    if steps < wanted:
        why += f", lowered so {samples} samples still make ≥ {MIN_STEPS_PER_EPOCH} steps an epoch"
    return AutoChoice(field="gradient_accumulation_steps", value=steps, reason=why)
