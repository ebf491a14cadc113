"""createTask's checks, in the order a user would fix them: everything is validated before any compute is spent.

A request becomes a `TaskPlan`: the resolved training config (with `auto` values replaced and recorded), the
devices it asks for, the dataset summary and the memory / time estimate. Any problem raises InvalidInput naming
the API field (baseModel, datasetPath, outputPath, gpuConfig.cuda_visible_devices, trainingArgs.<key>)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tuneforge.data.sources import split_names
from tuneforge.modelref import ModelNotFound, ModelSource, check_hub_model, locate_model
from tuneforge.schemas import ALIASES, ConfigError, ConfigProblem, TrainingConfig, parse_training_config
from tuneforge.schemas.tasks import name_problem
from tuneforge.service.auto_values import is_auto
from tuneforge.service.datasets_check import PACKAGE_DATA, DatasetSummary, check_task_datasets
from tuneforge.service.errors import DoesNotFit, InvalidInput
from tuneforge.service.path_args import absolutize, path_problems
from tuneforge.service.paths import confine
from tuneforge.settings import Settings

BUNDLED_DATASETS = PACKAGE_DATA / "datasets"
GPU_CONFIG_KEYS = ("cuda_visible_devices", "gpu_count", "memory_optimization")
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
    datasets: list[Any] | None = None  # managed datasets with mixing ratios (dataset_refs.apply_mixture)


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
    pinned: list[Any] = field(default_factory=list)  # managed dataset versions (dataset_refs.PinnedVersion)


def plan_task(request: TaskRequest, settings: Settings, devices: list[Any], check_name: bool = True) -> TaskPlan:
    problems: list[ConfigProblem] = []
    if check_name and (why := name_problem(request.name)):
        problems.append(ConfigProblem("name", why))
    raw, top_problems = merge_top_level(request)
    problems += top_problems
    use_bundled_datasets(raw)
    raw = absolutize(raw, Path.cwd())  # what the checks below found is what the worker (cwd: its run dir) will use
    problems += [p for p in path_problems(raw, settings.roots, [PACKAGE_DATA])
                 if p.field not in ("baseModel", "datasetPath", "outputPath")]  # those are checked below
    auto_keys = [key for key, value in raw.items() if is_auto(value)]
    probe: TrainingConfig | None = None
    try:
        probe = parse_training_config({k: v for k, v in raw.items() if k not in auto_keys})
    except ConfigError as exc:  # go on: the paths, devices and model are checked too, so one reply lists all
        problems += _prefixed(exc.problems)
    output_dir, output_problem = _output_dir(request, probe, raw, settings)
    problems += [output_problem] if output_problem else []
    indexes, count, device_problems = requested_devices(request.gpu_config, devices)
    problems += device_problems
    source, model_problems = _check_model(raw, settings) if raw.get("model_name_or_path") else (None, [])
    problems += model_problems
    tokenizer_file = _tokenizer_file(source, settings) if source else None
    summary = None
    if probe is not None and probe.do_train:
        if not probe.dataset:
            problems.append(ConfigProblem("datasetPath", "is required: a .json/.jsonl file, a folder with "
                                                         "train.jsonl, or a dataset_info.json name"))
        else:
            summary, dataset_problems = check_task_datasets(probe, "datasetPath", settings.roots, tokenizer_file)
            problems += dataset_problems
    if problems:
        raise InvalidInput.of(problems)
    chosen = [d for d in devices if indexes is None or d.index in indexes][:count]
    shape = _model_shape(source, settings)
    config = {**raw, "output_dir": str(output_dir)}
    if request.gpu_config.get("memory_optimization"):
        config["gradient_checkpointing"] = True
    auto_values: list[dict[str, Any]] = []
    if auto_keys:
        config, auto_values = _resolve_auto(config, shape, chosen, summary)
    try:
        cfg = parse_training_config(config)
    except ConfigError as exc:
        raise InvalidInput.of(_prefixed(exc.problems)) from exc
    estimate = _estimate(cfg, shape, chosen, summary)
    if estimate is not None and summary is not None:
        estimate["dataset"] = asdict(summary)
    if estimate is not None and not estimate["fits"]:
        raise DoesNotFit(_does_not_fit_message(estimate), [{"field": "estimate", "message": "", **estimate}])
    return TaskPlan(request, config, cfg, output_dir, indexes, count, summary, auto_values, estimate)


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


def use_bundled_datasets(raw: dict[str, Any]) -> None:
    """Names of the datasets shipped with tuneforge ("identity", "instructions") work without a dataset_dir."""
    names = split_names(raw.get("dataset")) + split_names(raw.get("eval_dataset"))
    if not names or raw.get("dataset_dir") or any(Path(n).suffix or "/" in n for n in names):
        return
    info = BUNDLED_DATASETS / "dataset_info.json"
    known = json.loads(info.read_text(encoding="utf-8")) if info.is_file() else {}
    if all(n in known for n in names):
        raw["dataset_dir"] = str(BUNDLED_DATASETS)


def requested_devices(gpu_config: Any, devices: list[Any]) -> tuple[list[int] | None, int, list[ConfigProblem]]:
    """`cuda_visible_devices: "0,1"` names devices (seed 003); `gpu_count: N` asks for any N; default one."""
    if not isinstance(gpu_config, dict):
        return None, 1, [ConfigProblem("gpuConfig", "must be an object like {\"cuda_visible_devices\": \"0\"}")]
    problems = [ConfigProblem(f"gpuConfig.{k}", f"unknown key; known: {', '.join(GPU_CONFIG_KEYS)}")
                for k in gpu_config if k not in GPU_CONFIG_KEYS]
    kind = devices[0].kind if devices else "cpu"
    have = (", ".join(str(d.index) for d in devices) or "none") if kind == "cuda" else \
        f"no GPU, CPU slots {', '.join(str(d.index) for d in devices)}"
    noun = "GPU" if kind == "cuda" else "device"
    visible = gpu_config.get("cuda_visible_devices")
    if visible not in (None, ""):
        try:
            indexes = [int(part) for part in str(visible).split(",") if part.strip()]
        except ValueError:
            return None, 1, [*problems, ConfigProblem("gpuConfig.cuda_visible_devices",
                                                      f"{visible!r} is not a list of device numbers like \"0,1\"")]
        missing = [i for i in indexes if i not in {d.index for d in devices}]
        if missing:
            names = ", ".join(map(str, missing))
            problems.append(ConfigProblem("gpuConfig.cuda_visible_devices",
                                          f"{noun} {names} does not exist (this host has: {have})"))
        if len(set(indexes)) != len(indexes):
            problems.append(ConfigProblem("gpuConfig.cuda_visible_devices", "names a device twice"))
        return indexes, len(indexes), problems
    count = gpu_config.get("gpu_count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        return None, 1, [*problems, ConfigProblem("gpuConfig.gpu_count", f"must be a whole number ≥ 1, got {count!r}")]
    if count > len(devices):
        problems.append(ConfigProblem("gpuConfig.gpu_count", f"asks for {count} devices but this host has "
                                                             f"{len(devices)} ({have})"))
    return None, count, problems


def _prefixed(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    return [ConfigProblem(TOP_LEVEL.get(p.field) or f"trainingArgs.{p.field}", p.message) for p in problems]


def _output_dir(
    request: TaskRequest, cfg: TrainingConfig | None, raw: dict[str, Any], settings: Settings
) -> tuple[Path, ConfigProblem | None]:
    value = request.output_path or raw.get("output_dir") or request.name
    path, problem = confine(value, settings.roots, "outputPath", base=settings.outputs_path)
    if problem:
        return Path(), problem
    assert path is not None
    holds_model = any((path / n).exists() for n in ("adapter_config.json", "model.safetensors",
                                                    "model.safetensors.index.json"))
    if holds_model and not (cfg and cfg.overwrite_output_dir):
        return path, ConfigProblem("outputPath", f"{path} already holds a trained model; choose another path or "
                                                 "set trainingArgs.overwrite_output_dir=true")
    return path, None


def _check_model(raw: dict[str, Any], settings: Settings) -> tuple[ModelSource | None, list[ConfigProblem]]:
    try:
        source = locate_model(str(raw["model_name_or_path"]), gguf_file=raw.get("gguf_file"))
        if not source.is_local:
            check_hub_model(source.path)
    except ModelNotFound as exc:
        hint = f" ({exc.hint})" if exc.hint else ""
        return None, [ConfigProblem("baseModel", f"{exc}{hint}")]
    if source.is_local and not source.bundled:
        _, problem = confine(source.path, settings.roots, "baseModel")
        if problem:
            return None, [problem]
    return source, []


def local_model_dir(source: ModelSource, settings: Settings) -> Path | None:
    """The directory with config.json / tokenizer.json, when we have one without loading anything."""
    if source.bundled:
        converted = settings.models_path / "smollm2-135m-instruct"
        return converted if (converted / "config.json").is_file() else None
    if source.is_local:
        return None if source.gguf_file else Path(source.path)
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(source.path, "config.json")
    return Path(cached).parent if isinstance(cached, str) else None


def _tokenizer_file(source: ModelSource, settings: Settings) -> Path | None:
    directory = local_model_dir(source, settings)
    return directory / "tokenizer.json" if directory else None


def _model_shape(source: ModelSource | None, settings: Settings) -> Any:
    from tuneforge.modelref.shape import ModelShapeError, read_model_shape

    if source is None:
        return None
    directory = local_model_dir(source, settings)
    try:
        if directory is not None:
            return read_model_shape(directory, None)
        if source.is_local and source.gguf_file:
            return read_model_shape(Path(source.path), source.gguf_file)
    except (ModelShapeError, OSError):
        return None
    return None


def _resolve_auto(config: dict[str, Any], shape: Any, devices: list[Any], summary: DatasetSummary | None):
    from tuneforge.service.auto_values import resolve_auto_values

    samples = summary.num_train_samples if summary else 0
    mean = summary.mean_sample_tokens if summary else 0.0
    if shape is None:
        raise InvalidInput.of([ConfigProblem("trainingArgs", "'auto' values need the model's size, and this model's "
                                                             "config could not be read; give numbers instead")])
    resolved, choices = resolve_auto_values(config, shape, devices, samples, mean)
    return resolved, [_as_dict(choice) for choice in choices]


def _estimate(cfg: TrainingConfig, shape: Any, devices: list[Any], summary: DatasetSummary | None):
    from tuneforge.service.estimate import estimate_training

    if shape is None or not devices or summary is None:
        return None
    estimate = estimate_training(cfg, shape, devices, summary.num_train_samples, summary.mean_sample_tokens)
    return estimate.model_dump(mode="json")


def _as_dict(choice: Any) -> dict[str, Any]:
    if hasattr(choice, "model_dump"):
        return choice.model_dump(mode="json")
    return asdict(choice)


def _does_not_fit_message(estimate: dict[str, Any]) -> str:
    gib = 1024**3
    memory = estimate.get("memory") or {}
    need = memory.get("total", 0) / gib
    capacity = estimate.get("device_memory", 0) / gib
    return (f"the task needs about {need:.1f} GiB per device but its devices have {capacity:.1f} GiB; lower "
            "per_device_train_batch_size or cutoff_len, turn on gradient_checkpointing, use LoRA / QLoRA, or ask "
            "for more devices")
