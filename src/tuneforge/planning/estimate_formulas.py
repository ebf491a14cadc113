"""The formulas behind `tuneforge.planning.estimate`: trained parameters per method, bytes per weight, optimizer
state, activation bytes per token, training FLOPs per token and device throughput. See estimate.py's docstring for
the model and its sources."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

from tuneforge.modelref.shape import FOUR_NORMS, Linear, ModelShape
from tuneforge.planning.devices import Device
from tuneforge.schemas import TrainingConfig
from tuneforge.schemas.stages import stage_info
from tuneforge.schemas.strategies import Sharding

MIB = 1024**2
GIB = 1024**3
MFU = 0.35  # model FLOPs utilisation a well-fed GPU reaches in fine-tuning
DDP_EFFICIENCY = 0.9  # gradient all-reduce between GPUs costs ~10%
QUANTIZED_SLOWDOWN = 1.3  # bitsandbytes de-quantises weights in every matmul
SFT_TRAINED_FRACTION = 0.5  # share of SFT tokens that are response tokens (the prompt is masked)
# Peak dense tensor TFLOP/s (bf16 / fp16, then fp32) by a substring of the NVML name; first match wins.
GPU_PEAK_TFLOPS: tuple[tuple[str, float, float], ...] = (
    ("H200", 989, 67), ("H100 PCIe", 756, 51), ("H100", 989, 67), ("A100", 312, 19.5), ("A10G", 70, 31.2),
    ("A10", 125, 31.2), ("L40S", 362, 91.6), ("L40", 181, 90.5), ("L4", 121, 30.3), ("4090", 165, 82.6),
    ("3090", 71, 35.6), ("V100", 125, 15.7), ("T4", 65, 8.1),
)
DEFAULT_GPU_TFLOPS = (50.0, 10.0)  # an unknown GPU: below every listed data-centre card, so ETAs err long
# The CPU calibration: bench/train_throughput.py on this project's 2-core machine (SmolLM2-135M bundled, SFT,
# LoRA r8 on all linear layers, fp32, batch 4, samples of ~123 tokens) trains ~190 tokens/s.
CPU_CALIBRATION_TOKENS_PER_SECOND = 190.0
CPU_CALIBRATION_CORES = 2
CPU_CALIBRATION_SAMPLE_TOKENS = 123.0
SMOLLM2_135M = ModelShape(
    architecture="LlamaForCausalLM", model_type="llama", num_parameters=134_515_008, hidden_size=576,
    num_layers=30, num_attention_heads=9, num_key_value_heads=3, intermediate_size=1536, vocab_size=49152,
    tie_word_embeddings=True, max_position_embeddings=8192, torch_dtype="bfloat16", head_dim=64,
)
# LoRA target names other architectures use, mapped to the LLaMA names of ModelShape.layer_linears().
TARGET_SYNONYMS = {
    "w1": ("gate_proj",), "w3": ("up_proj",), "w2": ("down_proj",), "qkv_proj": ("q_proj", "k_proj", "v_proj"),
    "query_key_value": ("q_proj", "k_proj", "v_proj"), "c_attn": ("q_proj", "k_proj", "v_proj"),
    "gate_up_proj": ("gate_proj", "up_proj"), "dense": ("o_proj",), "out_proj": ("o_proj",),
}
MODULE_GROUPS = {"self_attn": ("q_proj", "k_proj", "v_proj", "o_proj"), "mlp": ("gate_proj", "up_proj", "down_proj")}


@dataclass(frozen=True)
class Trainable:
    """What a method trains: new adapter parameters, base weights trained in place, and how far backward goes."""

    adapter_parameters: int  # LoRA matrices and modules_to_save copies, stored next to the base weights
    base_trained: int  # base weights trained in place (full, freeze)
    backward_blocks: int  # decoder blocks the backward pass runs through (and whose activations are kept)
    adapted: tuple[Linear, ...] = ()  # the linear layers of one block that carry LoRA
    notes: tuple[str, ...] = ()

    @property
    def parameters(self) -> int:
        return self.adapter_parameters + self.base_trained


def count_trainable(cfg: TrainingConfig, shape: ModelShape) -> Trainable:
    if cfg.finetuning_type == "full":
        return Trainable(0, shape.num_parameters, shape.num_layers)
    if cfg.finetuning_type == "freeze":
        return _freeze_trainable(cfg, shape)
    return _lora_trainable(cfg, shape)


def _outside_block(name: str, shape: ModelShape) -> int:
    """Parameters of a module outside the decoder blocks (embed_tokens, lm_head, norm); 0 when unknown."""
    sizes = {"embed_tokens": shape.embedding_parameters, "lm_head": shape.vocab_size * shape.hidden_size,
             "norm": shape.hidden_size}
    return sizes.get(name, 0)


def _lora_trainable(cfg: TrainingConfig, shape: ModelShape) -> Trainable:
    linears = {lin.name: lin for lin in shape.layer_linears()}
    wanted: list[str] = []
    outside, unknown = 0, []
    for target in cfg.lora_target:
        if target == "all":
            wanted += linears
        elif target in linears or target in TARGET_SYNONYMS:
            wanted += TARGET_SYNONYMS.get(target, (target,))
        elif _outside_block(target, shape):
            outside += cfg.lora_rank * (shape.vocab_size + shape.hidden_size)
        else:
            unknown.append(target)
    adapted = tuple(linears[name] for name in dict.fromkeys(wanted))
    rank = cfg.lora_rank
    per_block = sum(rank * (lin.in_features + lin.out_features) * lin.copies for lin in adapted)
    if cfg.use_dora:
        per_block += sum(lin.out_features * lin.copies for lin in adapted)  # DoRA's magnitude vectors
    saved = sum(_outside_block(name, shape) for name in cfg.additional_target or [])
    notes = []
    if unknown:
        notes.append(f"lora_target {', '.join(unknown)}: not a layer this estimate knows for {shape.model_type}; "
                     "counted as 0 parameters")
    if cfg.use_dora:
        notes.append("DoRA: time assumes plain LoRA; DoRA is usually 20–40% slower")
    return Trainable(per_block * shape.num_layers + outside + saved, 0, shape.num_layers, adapted, tuple(notes))


def _freeze_trainable(cfg: TrainingConfig, shape: ModelShape) -> Trainable:
    layers = min(abs(cfg.freeze_trainable_layers), shape.num_layers)
    modules = cfg.freeze_trainable_modules
    if "all" in modules:
        per_block = shape.block_parameters
    else:
        linears = {lin.name: lin for lin in shape.layer_linears()}
        names = [n for m in modules for n in MODULE_GROUPS.get(m, (m,)) if n in linears]
        per_block = sum(linears[n].parameters for n in dict.fromkeys(names))
    extra = sum(_outside_block(name, shape) for name in cfg.freeze_extra_modules or [])
    # Training the last n blocks stops the backward pass there; the first n (or the embeddings) need all blocks.
    backward = layers if cfg.freeze_trainable_layers > 0 and not extra else shape.num_layers
    return Trainable(0, per_block * layers + extra, backward)


def weight_bytes(cfg: TrainingConfig, shape: ModelShape, trainable: Trainable) -> int:
    """Bytes of the base model's weights as the worker holds them (adapters not included)."""
    frozen_bytes = 2 if cfg.precision in ("bf16", "fp16") else 4
    trained_bytes = 2 if cfg.pure_bf16 else 4  # mixed precision trains an fp32 master copy
    if cfg.quantization_bit:
        linear = min(shape.num_layers * sum(lin.parameters for lin in shape.layer_linears()), shape.num_parameters)
        constants = 0.016 if cfg.double_quantization else 0.0625  # bnb absmax per 64-value block
        per_weight = 0.5 + constants if cfg.quantization_bit == 4 else 1.0 + 0.0625
        return int(linear * per_weight + (shape.num_parameters - linear) * frozen_bytes)
    trained = min(trainable.base_trained, shape.num_parameters)
    return (shape.num_parameters - trained) * frozen_bytes + trained * trained_bytes


def optimizer_bytes_per_parameter(optim: str, pure_bf16: bool) -> float:
    """State per trained parameter: AdamW keeps two (fp32, or bf16 for bf16 parameters); 8-bit ones 1 byte each."""
    name = optim.lower()
    state = 2 if pure_bf16 else 4
    if "sgd" in name:
        return 0.0  # transformers' SGD has no momentum by default
    if "adafactor" in name:
        return 0.5  # factored second moment: a row and a column per matrix
    if "8bit" in name:
        return 1.0 if "lion" in name else 2.0
    if "4bit" in name:
        return 1.0
    if any(single in name for single in ("lion", "adagrad", "rmsprop")):
        return float(state)
    return 2.0 * state


@dataclass(frozen=True)
class ActivationCost:
    per_token: float  # bytes kept for backward per token of a forward pass, all blocks together
    compute_bytes: int  # 2 under bf16 / fp16, 4 in fp32


def activation_bytes_per_token(cfg: TrainingConfig, shape: ModelShape, trainable: Trainable,
                               checkpointing: bool) -> ActivationCost:
    """Korthikanti et al.'s per-layer sbh·(34 + 5as/h) recast for Llama blocks under SDPA (no s² term)."""
    act = 2 if cfg.precision in ("bf16", "fp16") else 4
    h, kv, inter = shape.hidden_size, shape.kv_size, shape.intermediate_size
    q = shape.num_attention_heads * shape.attention_head_dim
    routed = max(shape.num_experts_per_token, 1) if shape.num_experts else 1
    norms = (4 if shape.model_type in FOUR_NORMS else 2) * h * (8 + act)  # fp32 upcast input and normalised, output
    attention = act * (2 * q + 2 * kv)  # q, k, v after RoPE and the attention output
    mlp = act * 4 * inter * routed  # gate, up, act(gate), act(gate)·up
    lora = 0
    for lin in trainable.adapted:
        copies = routed if lin.copies > 1 else 1
        lora += act * cfg.lora_rank * copies  # A's output, for B's gradient
        if cfg.lora_dropout > 0:
            lora += (act + 1) * lin.in_features * copies  # the dropped-out input and its mask
    block = norms + attention + mlp + lora
    if checkpointing:
        residual = 4 if cfg.precision == "fp32" or (cfg.finetuning_type == "full" and not cfg.pure_bf16) else 2
        return ActivationCost(trainable.backward_blocks * h * residual + block, act)
    return ActivationCost(trainable.backward_blocks * block, act)


def training_flops_per_token(cfg: TrainingConfig, shape: ModelShape, trainable: Trainable, sequence_tokens: float,
                             trained_fraction: float, checkpointing: bool) -> float:
    """Forward 2·N (+ causal attention 2·s·width per layer); backward 2·N for input gradients through the blocks
    it reaches, 2·N_trained for weight gradients; LoRA's adapters 6 per parameter; checkpointing re-runs forward."""
    layers = shape.num_layers
    width = shape.num_attention_heads * shape.attention_head_dim
    head = trained_fraction * shape.vocab_size * shape.hidden_size  # the LM head runs on trained tokens only
    forward = 2 * (layers * shape.active_block_parameters + head) + 2 * layers * sequence_tokens * width
    reach = trainable.backward_blocks / layers
    backward = forward * reach + 2 * min(trainable.base_trained, layers * shape.active_block_parameters + head)
    total = forward + backward + 6 * trainable.adapter_parameters
    if checkpointing:
        total += forward * reach
    if stage_info(cfg.stage).preference and cfg.stage != "ppo":
        total += forward  # the reference model's forward pass
    if cfg.quantization_bit:
        total *= QUANTIZED_SLOWDOWN
    return total


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@lru_cache(maxsize=1)
def cpu_flops_per_core() -> float:
    """FLOP/s one core sustains in the worker, from the calibration run above through this module's own formulas."""
    cfg = TrainingConfig(model_name_or_path="bundled", finetuning_type="lora", lora_rank=8, cutoff_len=512)
    per_token = training_flops_per_token(cfg, SMOLLM2_135M, count_trainable(cfg, SMOLLM2_135M),
                                         CPU_CALIBRATION_SAMPLE_TOKENS, SFT_TRAINED_FRACTION, False)
    return per_token * CPU_CALIBRATION_TOKENS_PER_SECOND / CPU_CALIBRATION_CORES


def gpu_peak_tflops(name: str, precision: str) -> tuple[float, str | None]:
    """(peak TFLOP/s for the precision, the table row that matched or None)."""
    for key, half, single in GPU_PEAK_TFLOPS:
        if key.lower() in name.lower():
            return (single if precision == "fp32" else half), key
    return DEFAULT_GPU_TFLOPS[1 if precision == "fp32" else 0], None


def throughput_flops(devices: list[Device], precision: str) -> tuple[float, str]:
    """Training FLOP/s of the task's devices together, and the basis in words."""
    if devices[0].kind == "cpu":
        cores = available_cores()
        per_core = cpu_flops_per_core()
        basis = (f"CPU: {per_core / 1e9:.0f} GFLOP/s per core × {cores} cores, calibrated on this project's "
                 f"measurement (SmolLM2-135M, LoRA, fp32: ~{CPU_CALIBRATION_TOKENS_PER_SECOND:.0f} tokens/s on "
                 f"{CPU_CALIBRATION_CORES} cores, bench/train_throughput.py); assumes the task has the host's cores "
                 "to itself (CPU slots share them)")
        return per_core * cores, basis
    peaks = [gpu_peak_tflops(d.name, precision) for d in devices]
    flops = sum(peak for peak, _ in peaks) * 1e12 * MFU * (DDP_EFFICIENCY if len(devices) > 1 else 1.0)
    peak, row = peaks[0]
    kind = "fp32" if precision == "fp32" else "bf16/fp16 tensor"
    where = f"table row '{row}'" if row else "not in the table: a conservative default"
    basis = f"{devices[0].name}: {peak:g} TFLOP/s peak {kind} ({where}) × {MFU} MFU"
    if len(devices) > 1:
        basis += f", × {len(devices)} devices × {DDP_EFFICIENCY} DDP efficiency"
    return flops, basis


@dataclass(frozen=True)
class DeviceShare:
    """Bytes of weights, gradients and optimizer state one device holds under a multi-device strategy."""

    weights: int
    gradients: int
    optimizer: int


def device_share(cfg: TrainingConfig, shape: ModelShape, trainable: Trainable, sharding: Sharding, world: int,
                 whole: DeviceShare) -> DeviceShare:
    """`whole` (what one device would hold alone) under `sharding` over `world` devices.

    DeepSpeed casts the model to 16-bit under bf16 / fp16: trained weights and their gradients are 16-bit on the
    device, the fp32 master copy lives with the optimizer state (the ZeRO paper's 2 + 2 + 12 bytes per parameter).
    Sharded weights are gathered for compute a block ahead (ZeRO-3 and FSDP2 both prefetch the next block)."""
    weights, gradients, optimizer = whole.weights, whole.gradients, whole.optimizer
    trained = min(trainable.base_trained, shape.num_parameters)
    if sharding.master_in_optimizer and cfg.precision != "fp32":
        weights -= trained * 2  # fp32 → 16-bit
        optimizer += trainable.parameters * 4
        gradients //= 2
    compute_bytes = 4 if cfg.precision == "fp32" else 2
    gathered = 2 * shape.block_parameters * compute_bytes
    if sharding.offload_weights:
        weights = gathered
    elif sharding.weights:
        weights = weights // world + gathered
    if sharding.gradients:
        gradients //= world
    if sharding.offload_optimizer:
        optimizer = 0
    elif sharding.optimizer:
        optimizer //= world
    return DeviceShare(weights, gradients, optimizer)
