"""Settings of a run on a Ray cluster, under LLaMA-Factory's names (its `USE_RAY=1` keys): how many workers, what
each holds, how they are placed. They decide only where the worker runs; the worker itself never reads them."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import field_validator

from tuneforge.schemas.training_fields import ArgsBase, arg

RAY_RESOURCE_KEYS = ("GPU", "CPU", "memory")
# ray.init arguments a run may set (the driver sets address and log_to_driver itself). A server takes `namespace`
# alone: a runtime environment runs code on the cluster, which is its administrator's to choose.
RAY_INIT_KEYS = ("namespace", "runtime_env", "num_cpus", "num_gpus", "resources", "object_store_memory",
                 "logging_level")
SERVER_RAY_INIT_KEYS = ("namespace",)


class ClusterArgs(ArgsBase):
    ray_num_workers: int | None = arg(
        None, group="acceleration", advanced=True, ge=1, le=4096,
        en="Train on a Ray cluster with this many workers (one process each, on one GPU by default): Ray Train "
           "places them, starts the process group, and a lost worker fails the run, which resumes from its last "
           "checkpoint. Needs the ray package and the run directory on storage every node sees.",
        zh="在 Ray 集群上以该数量的 worker 训练（每个 worker 一个进程，默认各占一张 GPU）：由 Ray Train 放置 worker 并"
           "建立进程组；worker 丢失时任务失败，可从最近的检查点继续。需安装 ray，且运行目录位于各节点可见的存储上。")
    resources_per_worker: dict[str, float] | None = arg(
        None, group="acceleration", advanced=True,
        en="What each Ray worker holds, e.g. {\"GPU\": 1} (the default on GPUs) or {\"CPU\": 2}; keys GPU, CPU, "
           "memory (bytes). A JSON string is read too.",
        zh="每个 Ray worker 占用的资源，例如 {\"GPU\": 1}（GPU 上的默认值）或 {\"CPU\": 2}；键为 GPU、CPU、"
           "memory（字节）。也可写成 JSON 字符串。")
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = arg(
        "PACK", group="acceleration", advanced=True,
        en="How Ray places the workers: PACK fills a node before the next (fast communication), SPREAD puts "
           "them on different nodes; STRICT_ fails instead of bending the rule.",
        zh="Ray 放置 worker 的方式：PACK 先占满一个节点（通信快），SPREAD 分散到不同节点；STRICT_ 前缀表示"
           "无法满足时失败而不是放宽。")
    ray_init_kwargs: dict[str, Any] | None = arg(
        None, group="acceleration", advanced=True,
        en="Arguments of ray.init, e.g. {\"namespace\": \"team-a\"} or {\"runtime_env\": {...}}; the cluster "
           "address comes from TUNEFORGE_RAY_ADDRESS (or RAY_ADDRESS), not from here.",
        zh="ray.init 的参数，例如 {\"namespace\": \"team-a\"} 或 {\"runtime_env\": {...}}；集群地址来自 "
           "TUNEFORGE_RAY_ADDRESS（或 RAY_ADDRESS），不在此设置。")

    @field_validator("resources_per_worker", mode="before")
    @classmethod
    def _resources(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not JSON: {exc.msg}; write it like {{\"GPU\": 1}}") from exc
        if isinstance(value, dict):
            unknown = sorted(set(value) - set(RAY_RESOURCE_KEYS))
            if unknown:
                raise ValueError(f"unknown resource {unknown[0]!r}; known: {', '.join(RAY_RESOURCE_KEYS)}")
            if any(not isinstance(v, int | float) or isinstance(v, bool) or v < 0 for v in value.values()):
                raise ValueError("every amount must be a number ≥ 0")
        return value

    @field_validator("ray_init_kwargs")
    @classmethod
    def _init_arguments(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value and "address" in value:
            raise ValueError("the cluster address is TUNEFORGE_RAY_ADDRESS (or RAY_ADDRESS) on the host that "
                             "starts the run, so one config runs on any cluster: remove address")
        unknown = sorted(set(value or {}) - set(RAY_INIT_KEYS))
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not taken here; ray.init arguments taken: {', '.join(RAY_INIT_KEYS)}")
        return value

    @field_validator("resources_per_worker")
    @classmethod
    def _whole_gpus(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        gpus = (value or {}).get("GPU", 0)
        if gpus and gpus != int(gpus):
            raise ValueError(f"GPU {gpus:g}: a worker trains on whole GPUs (two ranks on one GPU break NCCL)")
        return value
