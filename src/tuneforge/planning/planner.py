"""The one planner: a training config and the host's facts in, a runnable plan or every problem at once out.

`tuneforge train [--check]`, createTask, estimateTask, the console's estimate step and `tuneforge tasks create`
all come here, so the same input gets the same verdict everywhere. The phases run in the order a user would fix
things, and each adds its problems to one list: parse → resolve paths → locate the model → check the data →
check capabilities → resolve `auto` values and estimate. Problems name config keys (`learning_rate`, `dataset`);
the API prefixes them with its own field names.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tuneforge.planning.auto_values import is_auto, resolve_compute_type
from tuneforge.planning.capabilities import DataFacts, capability_problems
from tuneforge.planning.datasets import PACKAGE_DATA, DatasetSummary, check_task_datasets
from tuneforge.planning.host import HostFacts
from tuneforge.planning.model_facts import ModelFacts, locate
from tuneforge.planning.path_args import absolutize, path_problems, root_relative
from tuneforge.planning.paths import confine, output_problem
from tuneforge.planning.rewards import reward_problems
from tuneforge.planning.strategy import canonical_deepspeed, deepspeed_file_problems
from tuneforge.schemas import ALIASES, ConfigError, ConfigProblem, TrainingConfig, parse_training_config
from tuneforge.schemas.stages import SUPPORTED_STAGES

BUNDLED_DATASETS = PACKAGE_DATA / "datasets"
WRITTEN_DIRS = ("tokenized_path", "cache_dir", "logging_dir")
MODEL_FILES = ("adapter_config.json", "model.safetensors", "model.safetensors.index.json")


@dataclass(frozen=True)
class PlanInput:
    config: dict[str, Any]  # keys as the user wrote them (aliases too); 'auto' where the planner may choose
    host: HostFacts
    config_dir: Path | None = None  # relative paths: next to the config file first, then the working directory
    roots: list[Path] | None = None  # allowed folders; None: not confined (`tuneforge train` on one's own machine)
    output_base: Path = field(default_factory=Path.cwd)  # where a relative output_dir lands
    default_output: str = "saves/tuneforge-run"
    models_cache: Path | None = None  # where the bundled model is converted (its config.json, tokenizer.json)
    reserved: tuple[Path, ...] = ()  # the platform's own folders: never an output


@dataclass
class TrainingPlan:
    config: dict[str, Any]  # what the worker gets: absolute paths, `auto` replaced, output_dir set
    cfg: TrainingConfig
    output_dir: Path
    model: ModelFacts | None
    dataset: DatasetSummary | None
    auto_values: list[dict[str, Any]] = field(default_factory=list)
    estimate: dict[str, Any] | None = None


class PlanRejected(Exception):
    """Every problem found; `estimate` is set when the only trouble is that the run does not fit its devices."""

    def __init__(self, problems: list[ConfigProblem], estimate: dict[str, Any] | None = None) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems
        self.estimate = estimate


def plan_training(given: PlanInput) -> TrainingPlan:
    problems: list[ConfigProblem] = []
    with_precision, precision_choices = resolve_compute_type(given.config, given.host.devices)
    raw, auto_keys = _with_canonical_auto_keys(with_precision)
    _use_bundled_datasets(raw)
    raw = canonical_deepspeed(raw, given.config_dir, given.roots)
    if given.roots is None:
        raw = absolutize(raw, given.config_dir or Path.cwd())
    else:
        raw, rooted_problems = root_relative(raw, given.roots)
        problems += rooted_problems
    problems += _place_written_dirs(raw, given.output_base)
    probe, parse_problems = _parse(raw, auto_keys)
    problems += parse_problems
    problems += _path_problems(raw, given)
    output_dir, output_problem = _output_dir(raw, probe, given)
    problems += [output_problem] if output_problem else []
    model, model_problems = locate(raw, given.config_dir, given.roots, given.models_cache)
    problems += model_problems
    summary = None
    if probe is not None:
        summary, data_problems = _check_data(probe, given, model)
        problems += data_problems
        shape = model.shape if model else None
        facts = DataFacts(model_is_local=model.is_local if model else True,
                          has_eval_data=bool(summary and summary.num_eval_samples) or bool(probe.val_size),
                          context_length=getattr(shape, "max_position_embeddings", None))
        problems += capability_problems(probe, given.host, facts)
        if not any(problem.field == "deepspeed" for problem in problems):
            problems += deepspeed_file_problems(probe)  # read only once its path and the host passed
        problems += reward_problems(probe, given.config_dir, served=given.roots is not None)
    if problems:
        raise PlanRejected(_unique(problems))
    if probe is not None and probe.ray_num_workers:  # stored as the schema reads them ("8" → 8, JSON text → dict)
        raw["ray_num_workers"] = probe.ray_num_workers
        if probe.resources_per_worker is not None:
            raw["resources_per_worker"] = probe.resources_per_worker
    config = {**raw, "output_dir": str(output_dir)}
    plan = _resolve_and_estimate(config, auto_keys, output_dir, model, summary, given.host)
    plan.auto_values[:0] = [choice.model_dump(mode="json") for choice in precision_choices]
    return plan


def _with_canonical_auto_keys(config: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    raw = {ALIASES.get(k, k) if is_auto(v) else k: v for k, v in config.items()}
    return raw, [key for key, value in raw.items() if is_auto(value)]


def _place_written_dirs(raw: dict[str, Any], output_base: Path) -> list[ConfigProblem]:
    """Folders the run writes into land under the output folder's base when relative, never in the run directory
    (the worker's working directory); '..' may not climb out of it."""
    problems = []
    for key in WRITTEN_DIRS:
        value = raw.get(key)
        if not isinstance(value, str) or not value or Path(value).expanduser().is_absolute():
            continue
        if ".." in Path(value).parts:
            problems.append(ConfigProblem(key, f"{value!r} contains '..'; give a folder name, or an absolute path "
                                               "inside the allowed folders"))
            continue
        raw[key] = str((output_base / value).resolve())
    return problems


def _parse(raw: dict[str, Any], auto_keys: list[str]) -> tuple[TrainingConfig | None, list[ConfigProblem]]:
    """The config without its `auto` values; when some keys are wrong, the rest, so that the later phases still
    check what they can and one reply lists every problem."""
    given = {k: v for k, v in raw.items() if k not in auto_keys}
    try:
        return parse_training_config(given), []
    except ConfigError as exc:
        problems = list(exc.problems)
    broken = {name.strip() for p in problems for name in p.field.split(" (given as")[0].split(",")}
    try:
        return parse_training_config({k: v for k, v in given.items() if k not in broken}), problems
    except ConfigError:
        return None, problems


def _path_problems(raw: dict[str, Any], given: PlanInput) -> list[ConfigProblem]:
    if given.roots is None:
        return []
    exempt = [PACKAGE_DATA]
    return [p for p in path_problems(raw, given.roots, exempt) if p.field not in ("model_name_or_path", "dataset",
                                                                                   "output_dir")]


def _use_bundled_datasets(raw: dict[str, Any]) -> None:
    """Names of the datasets shipped with tuneforge ("identity", "instructions") work without a dataset_dir."""
    import json

    from tuneforge.data.sources import split_names

    names = split_names(raw.get("dataset")) + split_names(raw.get("eval_dataset"))
    if not names or raw.get("dataset_dir") or any(Path(n).suffix or "/" in n for n in names):
        return
    info = BUNDLED_DATASETS / "dataset_info.json"
    known = json.loads(info.read_text(encoding="utf-8")) if info.is_file() else {}
    if all(n in known for n in names):
        raw["dataset_dir"] = str(BUNDLED_DATASETS)


def _output_dir(raw: dict[str, Any], cfg: TrainingConfig | None, given: PlanInput) -> tuple[Path, ConfigProblem | None]:
    value = str(raw.get("output_dir") or given.default_output)
    if given.roots is not None:
        path, problem = confine(value, given.roots, "output_dir", base=given.output_base)
        if problem or path is None:
            return Path(), problem
    else:
        path = Path(value).expanduser()
        path = (path if path.is_absolute() else given.output_base / path).resolve()
    if (problem := _reserved_problem(path, given)) is not None:
        return path, problem
    keeps_going = cfg is not None and (cfg.overwrite_output_dir or cfg.resume_from_checkpoint)
    if any((path / name).exists() for name in MODEL_FILES) and not keeps_going:
        return path, ConfigProblem("output_dir", f"{path} already holds a trained model; choose another path, set "
                                                 "overwrite_output_dir: true, or resume with "
                                                 "resume_from_checkpoint: last")
    return path, None


def _reserved_problem(path: Path, given: PlanInput) -> ConfigProblem | None:
    """An output folder is emptied when its task or model is deleted: never a root, the outputs folder itself or
    one of the platform's own folders."""
    if given.roots is None:
        return None
    roots = [*given.roots, given.output_base.resolve()]
    return output_problem(path, roots, list(given.reserved), "output_dir")


def _check_data(cfg: TrainingConfig, given: PlanInput, model: ModelFacts | None
                ) -> tuple[DatasetSummary | None, list[ConfigProblem]]:
    if not cfg.dataset:
        return None, [ConfigProblem("dataset", "is required: a .json/.jsonl file, a folder with train.jsonl, or a "
                                               "dataset_info.json name")]
    if not cfg.do_train or cfg.stage not in SUPPORTED_STAGES:
        return None, []  # refused by the capability phase; reading the data for that stage would only add noise
    tokenizer = model.tokenizer_file if model else None
    roots = None if given.roots is None else [*given.roots, PACKAGE_DATA]
    return check_task_datasets(cfg, "dataset", roots, tokenizer, given.config_dir)


def _resolve_and_estimate(config: dict[str, Any], auto_keys: list[str], output_dir: Path, model: ModelFacts | None,
                          summary: DatasetSummary | None, host: HostFacts) -> TrainingPlan:
    from tuneforge.planning.auto_values import resolve_auto_values
    from tuneforge.planning.estimate import estimate_training

    shape = model.shape if model else None
    host = training_host(config, host)
    if config.get("ray_num_workers") and not config.get("resources_per_worker") and host.devices:
        config = {**config, "resources_per_worker": {"GPU": 1} if host.has_cuda else {"CPU": 1}}
    auto_values: list[dict[str, Any]] = []
    if auto_keys:
        if shape is None:
            raise PlanRejected([ConfigProblem(auto_keys[0], "'auto' needs the model's size, and this model's config "
                                                            "could not be read; give a number instead")])
        samples = summary.num_train_samples if summary else 0
        mean = summary.mean_sample_tokens if summary else 0.0
        config, choices = resolve_auto_values(config, shape, host.devices, samples, mean)
        auto_values = [choice.model_dump(mode="json") for choice in choices]
    try:
        cfg = parse_training_config(config)
    except ConfigError as exc:
        raise PlanRejected(list(exc.problems)) from exc
    estimate = None
    if shape is not None and host.devices and summary is not None:
        result = estimate_training(cfg, shape, host.devices, summary.num_train_samples, summary.mean_sample_tokens)
        estimate = {**result.model_dump(mode="json"), "dataset": summary.as_dict()}
        if not estimate["fits"]:
            raise PlanRejected([ConfigProblem("estimate", does_not_fit_message(estimate))], estimate)
    return TrainingPlan(config, cfg, output_dir, model, summary, auto_values, estimate)


def training_host(config: dict[str, Any], host: HostFacts) -> HostFacts:
    """The devices the run trains on, as batch sizes and the estimate count them: a Ray run's workers, each one
    device like this host's first (a cluster's nodes are planned as this host's kind of device)."""
    workers = config.get("ray_num_workers")
    if not isinstance(workers, int) or workers < 1 or not host.devices:
        return host
    return replace(host, devices=[replace(host.devices[0], index=i) for i in range(workers)])


def does_not_fit_message(estimate: dict[str, Any]) -> str:
    gib = 1024**3
    need = (estimate.get("memory") or {}).get("total", 0) / gib
    capacity = estimate.get("device_memory", 0) / gib
    return (f"the task needs about {need:.1f} GiB per device but its devices have {capacity:.1f} GiB; lower "
            "per_device_train_batch_size or cutoff_len, turn on gradient_checkpointing, use LoRA / QLoRA, or ask "
            "for more devices")


def _unique(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    seen: set[tuple[str, str]] = set()
    kept = []
    for problem in problems:
        key = (problem.field, problem.message)
        if key not in seen:
            seen.add(key)
            kept.append(problem)
    return kept
