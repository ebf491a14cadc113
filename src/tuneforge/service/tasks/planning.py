"""createTask's request → the planner's input, and the planner's verdict → the API's fields.

A request becomes a `TaskPlan`: the planner's plan (resolved config with `auto` values replaced and recorded, the
dataset summary and truncation report, the memory / time estimate) plus the devices it asks for. Any problem
raises InvalidInput naming the API field (baseModel, datasetPath, outputPath, gpuConfig.cuda_visible_devices,
trainingArgs.<key>); the rules themselves live in tuneforge.planning, shared with `tuneforge train --check`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneforge.planning import HostFacts, PlanInput, PlanRejected, installed_packages, plan_training
from tuneforge.planning.auto_values import is_auto
from tuneforge.planning.datasets import DatasetSummary
from tuneforge.planning.devices import Device
from tuneforge.planning.planner import BUNDLED_DATASETS
from tuneforge.schemas import ALIASES, ConfigProblem, TrainingConfig
from tuneforge.schemas.tasks import name_problem
from tuneforge.schemas.training_fields_cluster import SERVER_RAY_INIT_KEYS
from tuneforge.schemas.training_fields_rl import reward_list
from tuneforge.service.datasets.refs import PinnedVersion
from tuneforge.service.errors import DoesNotFit, InvalidInput
from tuneforge.service.tasks.placement import RequestedPlacement, requested_placement
from tuneforge.settings import Settings

__all__ = ["BUNDLED_DATASETS", "TOP_LEVEL", "TaskPlan", "TaskRequest", "api_field", "plan_task"]

TOP_LEVEL = {"model_name_or_path": "baseModel", "dataset": "datasetPath", "output_dir": "outputPath"}


@dataclass
class TaskRequest:
    name: str
    base_model: str | None = None
    dataset_path: str | None = None
    output_path: str | None = None
    description: str = ""
    owner_id: int | None = None
    training_args: dict[str, Any] = field(default_factory=dict)
    gpu_config: dict[str, Any] = field(default_factory=dict)
    experiment_id: int | None = None
    datasets: list[Any] | None = None  # managed datasets with mixing ratios (refs.apply_mixture checks each item)


@dataclass
class TaskPlan:
    request: TaskRequest
    config: dict[str, Any]
    cfg: TrainingConfig
    output_dir: Path
    device_indexes: list[int] | None  # explicit devices, or None for "any `device_count` free ones"
    device_count: int
    dataset: DatasetSummary | None
    auto_values: list[dict[str, Any]] = field(default_factory=list)
    estimate: dict[str, Any] | None = None
    pinned: list[PinnedVersion] = field(default_factory=list)  # the managed dataset versions it trains on


def plan_task(request: TaskRequest, settings: Settings, devices: list[Device], check_name: bool = True,
              packages: frozenset[str] | None = None,
              stored_grader: Callable[[str], dict[str, Any] | None] | None = None,
              executors: tuple[str, ...] = ("local", "ray")) -> TaskPlan:
    """`stored_grader(name)`: a stored grader's object, which replaces its name in `rewards` (the worker reads
    only its spec, so a grader changed or deleted later does not change a run already planned)."""
    problems: list[ConfigProblem] = []
    if check_name and (why := name_problem(request.name)):
        problems.append(ConfigProblem("name", why))
    raw, top_problems = merge_top_level(request)
    problems += top_problems
    placement = requested_placement(request.gpu_config, devices, executors)
    problems += placement.problems + ray_workers(raw, request.gpu_config, placement)
    if placement.executor == "ray" and not settings.ray_address and placement.count > len(devices):
        field = "gpuConfig.nodes" if isinstance(request.gpu_config, dict) and request.gpu_config.get("executor") \
            else "trainingArgs.ray_num_workers"
        problems.append(ConfigProblem(field, f"asks for {placement.count} Ray workers, and without "
                                             "TUNEFORGE_RAY_ADDRESS they run on this host, which has "
                                             f"{len(devices)} device(s): ask for fewer, or give the server a Ray "
                                             "cluster"))
    if isinstance(request.gpu_config, dict) and request.gpu_config.get("memory_optimization"):
        raw["gradient_checkpointing"] = True
    if stored_grader is not None:
        raw = inline_stored_graders(raw, stored_grader)
    chosen = placement.plan_devices(devices)
    chosen = chosen[:1] if placement.executor == "ray" else chosen  # the planner counts ray_num_workers itself
    host = HostFacts(chosen, installed_packages() if packages is None else packages)
    given = PlanInput(raw, host, roots=settings.roots, output_base=settings.outputs_path,
                      default_output=request.name or "task", models_cache=settings.models_path,
                      reserved=tuple(settings.reserved_paths))
    try:
        plan = plan_training(given)
    except PlanRejected as exc:
        if exc.estimate is not None and not problems:
            raise DoesNotFit(exc.problems[0].message, [{"field": "estimate", "message": "", **exc.estimate}]) from exc
        raise InvalidInput.of([*problems, *(api_field(p) for p in exc.problems)]) from exc
    if problems:
        raise InvalidInput.of(problems)
    return TaskPlan(request, plan.config, plan.cfg, plan.output_dir, placement.indexes, placement.count,
                    plan.dataset, plan.auto_values, plan.estimate)


def ray_workers(raw: dict[str, Any], gpu_config: object, placement: RequestedPlacement) -> list[ConfigProblem]:
    """A Ray placement is ray_num_workers in the worker's config (what `tuneforge train` reads too); a config that
    already names ray_num_workers runs on Ray without saying so in gpuConfig. Updates `raw` and `placement`."""
    given = _worker_count(raw.get("ray_num_workers"))
    asked = gpu_config if isinstance(gpu_config, dict) else {}
    problems = _server_ray_init_problems(raw.get("ray_init_kwargs"))
    if given is None:
        if placement.executor == "ray":
            raw["ray_num_workers"] = placement.count
        return problems
    if placement.executor == "local" and not asked.get("executor"):
        if asked.get("cuda_visible_devices") not in (None, "") or "gpu_count" in asked:
            return [*problems, ConfigProblem("trainingArgs.ray_num_workers", "runs the task on Ray workers, and "
                                                                             "gpuConfig names this host's devices: "
                                                                             "remove one of them")]
        placement.executor, placement.indexes = "ray", None
    elif placement.executor != "ray":
        return [*problems, ConfigProblem("trainingArgs.ray_num_workers", f"runs the task on Ray, and "
                                                                         f"gpuConfig.executor is "
                                                                         f"{placement.executor!r}: remove one of "
                                                                         "them")]
    elif given != placement.count and ("nodes" in asked or "gpu_count" in asked):
        return [*problems, ConfigProblem("trainingArgs.ray_num_workers", f"is {given}, and gpuConfig asks for "
                                                                         f"{placement.count} workers: give it once")]
    placement.count = given
    return problems


def _worker_count(value: object) -> int | None:
    """ray_num_workers as the schema reads it ("8" and 8.0 are 8); None when absent or not a count (the planner
    names it)."""
    try:
        count = float(value) if isinstance(value, int | float | str) and not isinstance(value, bool) else None
    except ValueError:
        return None
    return int(count) if count is not None and count.is_integer() and count >= 1 else None


def _server_ray_init_problems(kwargs: object) -> list[ConfigProblem]:
    extra = sorted(set(kwargs) - set(SERVER_RAY_INIT_KEYS)) if isinstance(kwargs, dict) else []
    if not extra:
        return []
    return [ConfigProblem("trainingArgs.ray_init_kwargs", f"{extra[0]!r}: on the server a task sets only "
                                                          f"{', '.join(SERVER_RAY_INIT_KEYS)}; a runtime "
                                                          "environment or the cluster's resources are its "
                                                          "administrator's to set (TUNEFORGE_RAY_ADDRESS)")]


def inline_stored_graders(raw: dict[str, Any], stored_grader: Callable[[str], dict[str, Any] | None]
                          ) -> dict[str, Any]:
    """Each reward naming a stored grader gets the grader object; other names are left for the planner to refuse."""
    try:
        rewards = reward_list(raw.get("rewards"))
    except ValueError:
        return raw  # the planner names the field
    if not isinstance(rewards, list):
        return raw
    inlined = []
    for reward in rewards:
        name = reward.get("grader") if isinstance(reward, dict) else None
        spec = stored_grader(name) if isinstance(name, str) else None
        inlined.append({**reward, "grader": spec} if spec is not None else reward)
    return {**raw, "rewards": inlined}


def api_field(problem: ConfigProblem) -> ConfigProblem:
    """A config key as the API names it: top-level fields by their camelCase name, the rest inside trainingArgs."""
    if problem.field in TOP_LEVEL:
        return ConfigProblem(TOP_LEVEL[problem.field], problem.message)
    if problem.field == "estimate" or problem.field.startswith(("trainingArgs", "(config)")):
        return problem
    return ConfigProblem(f"trainingArgs.{problem.field}", problem.message)


def merge_top_level(request: TaskRequest) -> tuple[dict[str, Any], list[ConfigProblem]]:
    """baseModel / datasetPath / outputPath fill the training config; the same key in trainingArgs must agree."""
    if not isinstance(request.training_args, dict):
        return {}, [ConfigProblem("trainingArgs", "must be a JSON object of training arguments")]
    raw = {ALIASES.get(k, k) if is_auto(v) else k: v for k, v in request.training_args.items()}
    problems = []
    given = {"model_name_or_path": request.base_model, "dataset": request.dataset_path,
             "output_dir": request.output_path}
    for key, value in given.items():
        if value in (None, ""):
            continue
        if raw.get(key) not in (None, value):
            problems.append(ConfigProblem(f"trainingArgs.{key}", f"is {raw[key]!r} but {TOP_LEVEL[key]} is "
                                                                f"{value!r}: give it once"))
        raw[key] = value
    if not raw.get("model_name_or_path"):
        problems.append(ConfigProblem("baseModel", "is required: a model directory, a .gguf file, a hub id or "
                                                   "'bundled'"))
    return raw, problems
