"""Before launch: how much memory a task needs per device and how long it will train (torch-free).

Memory per device (DDP: every device holds a full copy; DeepSpeed ZeRO and FSDP2 hold a 1/N share of what they
shard, plus the block being gathered, and nothing of what they offload to CPU memory — see device_share):
- weights at the load precision: 16-bit for frozen weights under bf16 / fp16 (LoRA, freeze), fp32 for trained
  weights under mixed precision (the fp32 master copy of a full fine-tune), 16-bit with pure_bf16, 0.5 / 1 byte
  per linear weight with quantization_bit 4 / 8 (embeddings, norms and the LM head stay 16-bit);
- adapters: LoRA adds r·(in+out) per targeted linear layer ("all" = every linear layer of attention and MLP);
- gradients and optimizer state for the trained parameters only (AdamW: 2 fp32 states; 8-bit / paged variants
  a quarter of that);
- activations saved for backward, per token and layer (Korthikanti et al. 2022, "Reducing Activation Recomputation
  in Large Transformer Models", adapted to Llama-style blocks: RMSNorm with an fp32 upcast, GQA, a gated MLP,
  no dropout, SDPA / flash attention that keeps no s×s scores); gradient checkpointing keeps only each block's
  input plus one block. The worker batches without padding and splits a batch above its activation budget, so
  a forward pass holds batch × mean sample length tokens, at most max(budget, cutoff_len);
- logits only where a token is trained (the worker skips the LM head elsewhere), in fp32 for the loss;
- the CUDA context (~0.5 GiB) or the CPU process's runtime (~0.8 GiB), plus 10% allocator slack on activations.

Time: training FLOPs per token ≈ 6·N for full fine-tuning and 4·N + 6·N_trained for LoRA / freeze (frozen
weights get no weight gradient), + 2·N with gradient checkpointing, at an assumed throughput: a table of GPU peak
tensor TFLOP/s × 0.35 MFU, or this project's measured CPU figure (bench/train_throughput.py) per core.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from pydantic import BaseModel

from tuneforge.modelref.shape import ModelShape
from tuneforge.planning.devices import Device
from tuneforge.planning.estimate_formulas import (
    GIB,
    MIB,
    SFT_TRAINED_FRACTION,
    DeviceShare,
    Trainable,
    activation_bytes_per_token,
    count_trainable,
    device_share,
    optimizer_bytes_per_parameter,
    throughput_flops,
    training_flops_per_token,
    weight_bytes,
)
from tuneforge.schemas import TrainingConfig
from tuneforge.schemas.stages import packs_by_default, stage_info
from tuneforge.schemas.strategies import DDP, sharding_of

GPU_CONTEXT_BYTES = 512 * MIB
# python + torch + transformers + peft (~0.35 GiB at import), tokenizer, data and allocator caches: the demo's and
# the throughput bench's measured peak RSS (1.72 and 2.24 GiB) sit within 5% of the estimate with this figure.
CPU_RUNTIME_BYTES = 800 * MIB
ALLOCATOR_SLACK = 0.10
CPU_ACTIVATION_BUDGET = 384 * MIB  # the worker's split budget on CPU (engine.trainer.activation_token_budget)


class MemoryBreakdown(BaseModel):
    """Bytes needed on each device, by kind."""

    weights: int
    adapters: int
    gradients: int
    optimizer_state: int
    activations: int
    logits: int
    overhead: int
    total: int
    reference_model: int = 0  # dpo / kto / grpo with a KL term, when not LoRA: a frozen copy of the start weights
    generation_cache: int = 0  # grpo: the key / value cache of the sampled answers


class Estimate(BaseModel):
    """A task's memory need per device against the devices' memory, and its expected training time."""

    memory: MemoryBreakdown
    device_memory: int  # bytes, the smallest total memory among the task's devices
    device_free_memory: int  # bytes free now on the fullest of them
    devices: list[str]
    fits: bool
    total_parameters: int
    trainable_parameters: int
    tokens_per_forward: int
    gradient_checkpointing: bool
    steps_per_epoch: int
    total_steps: int
    tokens_per_epoch: int
    seconds_per_epoch: float
    total_seconds: float
    tokens_per_second: float
    basis: str
    notes: list[str]

    def summary(self) -> str:
        """One line with the numbers, for a refusal or a log."""
        parts = ", ".join(f"{name.replace('_', ' ')} {value / GIB:.1f}"
                          for name, value in self.memory.model_dump().items() if name != "total" and value)
        verdict = "fits" if self.fits else "does not fit"
        return (f"needs {self.memory.total / GIB:.1f} GiB per device ({parts} GiB); {self.devices[0]} has "
                f"{self.device_memory / GIB:.1f} GiB: {verdict}")


@dataclass(frozen=True)
class Workload:
    """What one epoch feeds the model, derived from the dataset summary and the config."""

    rows: int  # batch items per epoch: samples, or cutoff_len-long rows when packing
    sequence_tokens: float  # mean tokens of one sequence (the attention span)
    row_tokens: float  # tokens of one batch item (a preference pair holds two sequences)
    tokens_per_epoch: int
    trained_fraction: float  # share of tokens whose logits are computed
    notes: tuple[str, ...]


def workload(cfg: TrainingConfig, num_train_samples: int, mean_sample_tokens: float) -> Workload:
    notes: list[str] = []
    if mean_sample_tokens <= 0:
        mean_sample_tokens = float(cfg.cutoff_len)
        notes.append("sample length unknown: assumed cutoff_len tokens per sample")
    length = min(mean_sample_tokens, float(cfg.cutoff_len))
    rows = max(num_train_samples, 0)
    stage = stage_info(cfg.stage)
    per_row = stage.sequences_per_sample
    if stage.record_kind == "prompt":  # each prompt is answered num_generations times, each answer trained on
        rows, length = rows * cfg.num_generations, min(length, float(cfg.cutoff_len)) + cfg.max_new_tokens
        notes.append(f"{cfg.num_generations} sampled answers of up to {cfg.max_new_tokens} tokens per prompt")
    tokens = rows * length * per_row
    packing = packs_by_default(cfg.stage, cfg.packing)
    if packing and not cfg.neat_packing and per_row == 1:
        rows, length = max(math.ceil(tokens / cfg.cutoff_len), 1 if tokens else 0), float(cfg.cutoff_len)
    trained = 1.0 if stage.record_kind == "text" or cfg.train_on_prompt else SFT_TRAINED_FRACTION
    return Workload(rows, length, length * per_row, int(tokens), 0.0 if cfg.stage == "rm" else trained,
                    tuple(notes))


def estimate_training(cfg: TrainingConfig, shape: ModelShape, devices: list[Device], num_train_samples: int,
                      mean_sample_tokens: float) -> Estimate:
    """Memory per device and training time of `cfg` on `devices` (the ones the task would get)."""
    if not devices:
        raise ValueError("estimate_training needs at least one device")
    work = workload(cfg, num_train_samples, mean_sample_tokens)
    trainable = count_trainable(cfg, shape)
    notes = [*work.notes, *trainable.notes]
    checkpointing = bool(cfg.gradient_checkpointing)
    memory, pass_tokens = memory_need(cfg, shape, devices, work, trainable, checkpointing)
    capacity = min(d.total_memory for d in devices)
    free = min(d.free_memory for d in devices)
    fits = memory.total <= capacity
    notes += _memory_notes(cfg, shape, devices, work, trainable, memory, fits, free)
    flops, basis = throughput_flops(devices, cfg.precision)
    per_token = training_flops_per_token(cfg, shape, trainable, work.sequence_tokens, work.trained_fraction,
                                         checkpointing)
    tokens_per_second = flops / per_token
    world = len(devices)
    batches = math.ceil(work.rows / (cfg.per_device_train_batch_size * world)) if work.rows else 0
    steps_per_epoch = max(math.ceil(batches / cfg.gradient_accumulation_steps), 1)
    seconds_per_epoch = work.tokens_per_epoch / tokens_per_second
    if cfg.max_steps > 0:
        total_steps = cfg.max_steps
        total_seconds = seconds_per_epoch * cfg.max_steps / steps_per_epoch
    else:
        total_steps = math.ceil(cfg.num_train_epochs * steps_per_epoch)
        total_seconds = seconds_per_epoch * cfg.num_train_epochs
    notes.append("time covers training steps only: model loading, evaluation and checkpoint saves come on top")
    if stage_info(cfg.stage).record_kind == "prompt":
        notes.append(f"{cfg.stage}: sampling the answers is not in the time (it often takes longer than the training "
                     "steps on small models); the memory includes its key / value cache")
    return Estimate(
        memory=memory, device_memory=capacity, device_free_memory=free,
        devices=[f"{d.kind}:{d.index} {d.name}" for d in devices], fits=fits,
        total_parameters=shape.num_parameters, trainable_parameters=trainable.parameters,
        tokens_per_forward=pass_tokens, gradient_checkpointing=checkpointing,
        steps_per_epoch=steps_per_epoch, total_steps=total_steps, tokens_per_epoch=work.tokens_per_epoch,
        seconds_per_epoch=round(seconds_per_epoch, 1), total_seconds=round(total_seconds, 1),
        tokens_per_second=round(tokens_per_second, 1), basis=basis, notes=notes,
    )


def memory_need(cfg: TrainingConfig, shape: ModelShape, devices: list[Device], work: Workload,
                trainable: Trainable, checkpointing: bool) -> tuple[MemoryBreakdown, int]:
    """Per-device bytes, and the tokens one forward pass holds."""
    sharding = sharding_of(cfg.deepspeed, cfg.fsdp)
    world = len(devices)
    trained_bytes = 2 if cfg.pure_bf16 else 4  # trained parameters (and their gradients) stay fp32 unless pure bf16
    adapters = trainable.adapter_parameters * trained_bytes
    bucket_copy = 2 if world > 1 and sharding == DDP else 1  # DDP all-reduces from a copy of the gradients
    share = device_share(cfg, shape, trainable, sharding, world, DeviceShare(
        weights=weight_bytes(cfg, shape, trainable), gradients=trainable.parameters * trained_bytes * bucket_copy,
        optimizer=int(trainable.parameters * optimizer_bytes_per_parameter(cfg.optim, cfg.pure_bf16))))
    weights, gradients, optimizer = share.weights, share.gradients, share.optimizer
    pass_tokens = _tokens_per_forward(cfg, shape, devices, work, weights + adapters)
    per_token = activation_bytes_per_token(cfg, shape, trainable, checkpointing)
    activations = int(pass_tokens * per_token.per_token)
    logits = 0
    if not cfg.enable_liger_kernel:  # Liger's fused linear + cross-entropy never materialises the logits
        logits = int(pass_tokens * work.trained_fraction * shape.vocab_size * (per_token.compute_bytes + 8))
    gpu = devices[0].kind == "cuda"
    overhead = (GPU_CONTEXT_BYTES if gpu else CPU_RUNTIME_BYTES) + int(ALLOCATOR_SLACK * (activations + logits))
    reference, cache = reference_bytes(cfg, shape), generation_cache_bytes(cfg, shape)
    total = weights + adapters + gradients + optimizer + activations + logits + overhead + reference + cache
    return MemoryBreakdown(weights=weights, adapters=adapters, gradients=gradients, optimizer_state=optimizer,
                           activations=activations, logits=logits, overhead=overhead, total=total,
                           reference_model=reference, generation_cache=cache), pass_tokens


def reference_bytes(cfg: TrainingConfig, shape: ModelShape) -> int:
    """The frozen reference model the preference stages and GRPO's KL term compare against. With LoRA it is the
    base with the adapter switched off (nothing extra); otherwise TRL loads the start weights a second time."""
    needs = cfg.stage in ("dpo", "kto") or (cfg.stage == "grpo" and bool(cfg.kl_coef))
    if not needs or cfg.finetuning_type == "lora":
        return 0
    return shape.num_parameters * (2 if cfg.precision in ("bf16", "fp16") else 4)


def generation_cache_bytes(cfg: TrainingConfig, shape: ModelShape) -> int:
    """GRPO samples per_device_train_batch_size answers at once: keys and values of prompt + answer per layer."""
    if stage_info(cfg.stage).record_kind != "prompt":
        return 0
    head_dim = shape.attention_head_dim
    tokens = cfg.per_device_train_batch_size * (cfg.cutoff_len + cfg.max_new_tokens)
    value_bytes = 2 if cfg.precision in ("bf16", "fp16") else 4
    return tokens * shape.num_layers * 2 * shape.num_key_value_heads * head_dim * value_bytes


def engine_activation_budget(shape: ModelShape, device: Device, static_bytes: int) -> int:
    """Tokens per forward pass the worker allows before splitting a batch (mirrors its own rule: a quarter of the
    GPU memory free once the model is loaded; the device is taken as the task will get it, empty)."""
    per_token = shape.num_layers * (12 * shape.hidden_size + 4 * shape.intermediate_size) * 4
    free_after_load = device.total_memory - GPU_CONTEXT_BYTES - static_bytes
    target = max(free_after_load, 0) // 4 if device.kind == "cuda" else CPU_ACTIVATION_BUDGET
    return max(256, target // per_token)


def _tokens_per_forward(cfg: TrainingConfig, shape: ModelShape, devices: list[Device], work: Workload,
                        static_bytes: int) -> int:
    return _pass_tokens(cfg, shape, devices, cfg.per_device_train_batch_size * work.row_tokens, static_bytes)


def _pass_tokens(cfg: TrainingConfig, shape: ModelShape, devices: list[Device], batch_tokens: float,
                 static_bytes: int) -> int:
    batch_tokens = math.ceil(batch_tokens)
    if stage_info(cfg.stage).sequences_per_sample > 1 or cfg.deepspeed or cfg.fsdp:
        return batch_tokens  # the split applies to batches of single sequences (SFT / PT) under DDP only
    budget = min(engine_activation_budget(shape, d, static_bytes) for d in devices)
    return min(batch_tokens, max(budget, cfg.cutoff_len))


def _memory_notes(cfg: TrainingConfig, shape: ModelShape, devices: list[Device], work: Workload,
                  trainable: Trainable, memory: MemoryBreakdown, fits: bool, free: int) -> list[str]:
    notes = []
    if cfg.gradient_checkpointing is None:
        notes.append("activations assume gradient checkpointing off (unset = auto: the worker turns it on only "
                     "when the GPU is already half full)")
    notes += _strategy_notes(cfg, len(devices))
    if sharding_of(cfg.deepspeed, cfg.fsdp).weights:
        whole = weight_bytes(cfg, shape, trainable) / GIB
        notes.append(f"every rank first loads the whole model ({whole:.1f} GiB) into host memory and shards it "
                     "afterwards: a host needs that much RAM per rank on it while loading")
    if fits and memory.total > free:
        notes.append(f"fits the devices, but only {free / GIB:.1f} GiB is free now: the task waits until it is")
    if not fits:
        notes += _lighter_options(cfg, shape, devices, work)
    elif (peak := _longest_batch_need(cfg, shape, devices, work, trainable, memory)) > memory.total:
        notes.append(f"memory is for batches of average length; a batch of cutoff_len-long samples needs up to "
                     f"{peak / GIB:.1f} GiB" + ("" if peak <= min(d.total_memory for d in devices) else
                                                 ", more than the device has: lower cutoff_len if that happens"))
    return notes


def _strategy_notes(cfg: TrainingConfig, world: int) -> list[str]:
    sharding = sharding_of(cfg.deepspeed, cfg.fsdp)
    if sharding == DDP:
        over = f"{cfg.ray_num_workers} Ray workers" if cfg.ray_num_workers else f"{world} devices"
        return [f"DDP over {over}: each holds a full copy of the model and optimizer state; the time assumes "
                "the devices' links keep up (several nodes can be slower)"] if world > 1 else []
    shared = [name for name, on in (("weights", sharding.weights), ("gradients", sharding.gradients),
                                    ("optimizer state", sharding.optimizer)) if on]
    note = f"{sharding.name} over {world} device{'s' if world > 1 else ''}: each holds 1/{world} of the " \
           f"{', '.join(shared)}" if shared else f"{sharding.name}: nothing is sharded (ZeRO-0 is DDP)"
    offloaded = [name for name, on in (("weights", sharding.offload_weights),
                                       ("optimizer state", sharding.offload_optimizer)) if on]
    if offloaded:
        note += f"; the {' and '.join(offloaded)} live in CPU memory (slower steps)"
    return [note]


def _longest_batch_need(cfg: TrainingConfig, shape: ModelShape, devices: list[Device], work: Workload,
                        trainable: Trainable, memory: MemoryBreakdown) -> int:
    """Total bytes when every sample of a batch is cutoff_len long (the worker's split still applies)."""
    longest = replace(work, row_tokens=work.row_tokens / work.sequence_tokens * cfg.cutoff_len, sequence_tokens=
                      float(cfg.cutoff_len))
    peak, _ = memory_need(cfg, shape, devices, longest, trainable, bool(cfg.gradient_checkpointing))
    return peak.total if peak.activations > 1.2 * memory.activations else memory.total


def _lighter_options(cfg: TrainingConfig, shape: ModelShape, devices: list[Device], work: Workload) -> list[str]:
    """The first of the usual memory savers that would make the task fit, with its number."""
    options: list[tuple[str, dict[str, object]]] = [
        ("gradient_checkpointing: true", {"gradient_checkpointing": True}),
        ("finetuning_type: lora with gradient_checkpointing", {"finetuning_type": "lora",
                                                               "gradient_checkpointing": True}),
        ("QLoRA (finetuning_type: lora, quantization_bit: 4) with gradient_checkpointing",
         {"finetuning_type": "lora", "quantization_bit": 4, "gradient_checkpointing": True}),
    ]
    if devices[0].kind == "cuda" and not cfg.fsdp:  # sharding and offloading run on GPUs only
        if len(devices) > 1:
            options.insert(1, ("deepspeed: z3 (ZeRO-3) with gradient_checkpointing",
                               {"deepspeed": "z3", "gradient_checkpointing": True, "quantization_bit": None}))
        options.append(("deepspeed: z3_offload (ZeRO-3, weights and optimizer state in CPU memory) with "
                        "gradient_checkpointing", {"deepspeed": "z3_offload", "gradient_checkpointing": True,
                                                   "quantization_bit": None}))
    capacity = min(d.total_memory for d in devices)
    for label, change in options:
        if all(getattr(cfg, key) == value for key, value in change.items()):
            continue
        lighter = cfg.model_copy(update=change)
        memory, _ = memory_need(lighter, shape, devices, work, count_trainable(lighter, shape), True)
        if memory.total <= capacity:
            return [f"with {label} it would need {memory.total / GIB:.1f} GiB and fit"]
    return ["even QLoRA with gradient checkpointing would not fit: ask for more devices or a larger one"]
