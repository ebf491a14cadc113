"""The time estimate from measurement: when a similar task completed here — the same model, method and batch
shape on as many devices of the same executor — its measured throughput replaces the formula's (a FLOP count at an
assumed utilisation, which on a cluster misses the network). The estimate says which task it learned from."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneforge.schemas.tasks import TaskStatus
from tuneforge.store import Task

# Settings that change tokens/s besides model, stage, method and devices; a task must agree on each to be similar.
SPEED_SETTINGS = ("cutoff_len", "per_device_train_batch_size", "gradient_checkpointing", "bf16", "fp16",
                  "pure_bf16", "quantization_bit", "deepspeed", "fsdp", "flash_attn", "enable_liger_kernel",
                  "torch_compile", "optim", "ray_num_workers", "resources_per_worker", "placement_strategy",
                  "lora_rank", "lora_target", "use_dora", "freeze_trainable_layers", "packing", "neat_packing")
RECENT = 50


def with_measured_time(session: Session, estimate: dict[str, Any] | None, base_model: str, config: dict[str, Any],
                       device_count: int, gpu_config: dict[str, Any]) -> dict[str, Any] | None:
    if not estimate or not estimate.get("tokens_per_second"):
        return estimate
    similar = _similar_task(session, base_model, config, device_count, gpu_config)
    if similar is None or not similar.tokens_per_second:
        return estimate
    measured = float(similar.tokens_per_second)
    scale = float(estimate["tokens_per_second"]) / measured
    return {**estimate, "tokens_per_second": round(measured, 1),
            "seconds_per_epoch": round(float(estimate["seconds_per_epoch"]) * scale, 1),
            "total_seconds": round(float(estimate["total_seconds"]) * scale, 1),
            "basis": f"measured: task {similar.name!r} (id {similar.id}) trained this model the same way on "
                     f"{device_count} device{'s' if device_count > 1 else ''} at {measured:.0f} tokens/s",
            "time_source": "measured", "measured_task_id": similar.id}


def _similar_task(session: Session, base_model: str, config: dict[str, Any], device_count: int,
                  gpu_config: dict[str, Any]) -> Task | None:
    query = (select(Task).where(Task.status == TaskStatus.COMPLETED, Task.base_model == base_model,
                                Task.stage == config.get("stage", "sft"),
                                Task.finetuning_type == config.get("finetuning_type", "lora"),
                                Task.device_count == device_count, Task.tokens_per_second.is_not(None))
             .order_by(Task.ended_at.desc()).limit(RECENT))
    for task in session.scalars(query):
        args = task.training_args or {}
        if all(args.get(key) == config.get(key) for key in SPEED_SETTINGS) and _same_place(task, gpu_config):
            return task
    return None


def _same_place(task: Task, gpu_config: dict[str, Any]) -> bool:
    """The same executor and layout (an unset executor is the local one, unset nodes one, no selector empty)."""
    given = task.gpu_config or {}
    return ((given.get("executor") or "local") == (gpu_config.get("executor") or "local")
            and (given.get("nodes") or 1) == (gpu_config.get("nodes") or 1)
            and (given.get("node_selector") or {}) == (gpu_config.get("node_selector") or {})
            and given.get("cuda_visible_devices") == gpu_config.get("cuda_visible_devices"))
