"""One training run, start to finish: config → tokenizer and template → data → model → Trainer → outputs.

The steps every stage shares live here; the stage's module (engine/stages/<stage>.py) supplies its data, its
Trainer and its extra metrics.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneforge.engine.adapters import (
    converts_pissa,
    count_parameters,
    pissa_initial_dir,
    prepare_trainable_model,
    save_pissa_initial,
)
from tuneforge.engine.errors import EngineError, NotYetSupported
from tuneforge.engine.models import load_model, load_tokenizer, loadable, resolve_model_source
from tuneforge.engine.precision import Precision, choose_precision
from tuneforge.engine.stages import StageModule, TrainerInputs, stage_module
from tuneforge.engine.strategies import check_strategy_applied, strategy_arguments
from tuneforge.rundir import EventWriter, RunDir
from tuneforge.schemas.events import EventType
from tuneforge.schemas.strategies import sharding_of

log = logging.getLogger(__name__)


@dataclass
class RunOutcome:
    status: str  # completed | stopped | failed
    step: int
    checkpoint: str | None = None
    error: str | None = None
    hint: str | None = None
    metrics: dict[str, Any] | None = None


def run_training(run_dir: RunDir, events: EventWriter, stop: Any) -> RunOutcome:
    """Everything after the config was read: heavy imports happen here, not at module import."""
    from tuneforge.schemas import parse_training_config

    spec = run_dir.read_spec()
    cfg = parse_training_config(spec.config, source=str(run_dir.spec_file))
    config_dir = Path(spec.config_dir) if spec.config_dir else None
    stage_module(cfg.stage)  # refuses a stage this version does not run before anything heavy is loaded
    if not cfg.do_train:
        raise NotYetSupported("do_train: false (evaluate or predict only) is not yet supported by the worker",
                              hint="set do_train: true; evaluation jobs come with the models and evaluation issue")
    precision = choose_precision(cfg)
    prepared = _prepare(cfg, config_dir, precision)
    return _train(cfg, run_dir, events, stop, precision, prepared, config_dir)


@dataclass
class Prepared:
    model: Any
    tokenizer: Any
    template: Any
    data: Any
    stage: StageModule


def _prepare(cfg: Any, config_dir: Path | None, precision: Precision) -> Prepared:
    from transformers import set_seed

    from tuneforge.data.templates import fix_tokenizer, get_template

    stage = stage_module(cfg.stage)
    set_seed(cfg.seed)
    started = time.monotonic()
    source = loadable(resolve_model_source(cfg.model_name_or_path, config_dir=config_dir, gguf_file=cfg.gguf_file))
    tokenizer = load_tokenizer(source, trust_remote_code=cfg.trust_remote_code)
    template = get_template(cfg.template, tokenizer)
    fix_tokenizer(tokenizer, template)
    data = stage.prepare_data(cfg, tokenizer, template, config_dir)
    if not data.train:
        raise EngineError("no training samples left after reading and tokenising the dataset",
                          hint="check the dataset is not empty and cutoff_len is large enough")
    log.info("data: %s", data.stats)
    model = load_model(cfg, source, precision, head=getattr(stage, "MODEL_HEAD", "causal_lm"),
                       padding_free=getattr(stage, "PADDING_FREE", True))
    if model.config.pad_token_id is None:  # a reward model finds each sequence's last token by the padding
        model.config.pad_token_id = tokenizer.pad_token_id
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=64)
    model = prepare_trainable_model(model, cfg)
    log.info("model and data ready in %.1f s", time.monotonic() - started)
    return Prepared(model, tokenizer, template, data, stage)


def _train(cfg: Any, run_dir: RunDir, events: EventWriter, stop: Any, precision: Precision, prepared: Prepared,
           config_dir: Path | None) -> RunOutcome:
    from tuneforge.engine.callbacks import DivergenceGuard, GracefulStopCallback, RankSync, RunEventsCallback
    from tuneforge.engine.outputs import save_outputs
    from tuneforge.engine.trainer import TokenCounter

    counter = TokenCounter()
    has_eval = bool(prepared.data.eval)
    args = training_arguments(cfg, run_dir, precision, has_eval=has_eval,
                              moe=has_experts(prepared.model))  # under torchrun this joins the process group
    # Under torchrun every rank must take the same stop decision at the same step: RankSync agrees on it.
    sync = RankSync(stop, counter) if args.world_size > 1 else None
    stop_callback = GracefulStopCallback(sync or stop)
    # A policy-gradient loss (grpo, ppo) is no measure of fit: near zero, of either sign. There the guard stops
    # only on non-finite losses and gradients; the reward is what a user watches.
    factor = math.inf if prepared.stage.STAGE.record_kind == "prompt" else cfg.divergence_factor
    guard = DivergenceGuard(counter, factor, cfg.divergence_patience,
                            keep_weights=args.process_index == 0 and guard_keeps_weights(cfg, prepared.model)
                            ) if cfg.divergence_guard else None
    inputs = TrainerInputs(cfg, prepared.model, prepared.tokenizer, args, prepared.data, counter, precision,
                           callbacks=[c for c in (sync, stop_callback, guard) if c is not None],
                           config_dir=config_dir, completions_file=run_dir.completions_file,
                           template=prepared.template)
    trainer = prepared.stage.build_trainer(inputs)
    check_strategy_applied(trainer, cfg)
    stopped_while_loading = sync.agree(args.device) if sync else stop.requested
    if stopped_while_loading:
        return RunOutcome("stopped", 0)
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # our events and train.log say the same, once
    is_main = trainer.is_world_process_zero()
    trainer.add_callback(RunEventsCallback(events, run_dir.trainer_log_file, counter, is_main=is_main))
    resume = resolve_resume(cfg.resume_from_checkpoint, run_dir, config_dir)
    if is_main and converts_pissa(cfg):
        save_pissa_initial(prepared.model, pissa_initial_dir(run_dir))
    trainable, total = count_parameters(prepared.model)
    if is_main:
        events.emit(
            EventType.STARTED, pid=os.getpid(), total_steps=_total_steps(trainer), device=precision.device,
            num_train_samples=len(prepared.data.train), num_eval_samples=len(prepared.data.eval or []),
            trainable_params=trainable, total_params=total, precision=precision.name, resumed_from=resume,
            data=prepared.data.stats,
        )
    train_result = trainer.train(resume_from_checkpoint=resume)
    step = trainer.state.global_step
    last_checkpoint = _last_checkpoint(Path(args.output_dir))
    if guard is not None and guard.reason:
        last_good = guard.save_last_good(trainer, Path(args.output_dir)) if is_main else None
        return RunOutcome("failed", step, last_good, error=f"training diverged: {guard.reason}",
                          hint="lower learning_rate (e.g. ÷10), raise warmup_steps, or train in fp32 instead of fp16")
    if stop_callback.stopped_at is not None:
        return RunOutcome("stopped", step, last_checkpoint)
    metrics = dict(train_result.metrics)
    metrics.update(prepared.stage.extra_metrics(inputs, metrics))
    if has_eval and cfg.do_eval is not False:
        metrics.update(_final_eval(trainer))
    output_dir = resolve_output_dir(cfg, run_dir, config_dir)
    if is_main:
        save_outputs(trainer, prepared, cfg, output_dir, metrics, run_dir)
    return RunOutcome("completed", step, last_checkpoint, metrics=metrics)


def training_arguments(cfg: Any, run_dir: RunDir, precision: Precision, *, has_eval: bool, moe: bool = False):
    from transformers import TrainingArguments

    eval_strategy = cfg.eval_strategy if has_eval else "no"
    report_to = [r for r in cfg.report_to if r != "none"] or "none"
    if report_to != "none":
        _check_reporters(report_to)
    if cfg.logging_dir:
        os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(cfg.logging_dir))
    checkpointing = use_gradient_checkpointing(cfg, precision)
    strategy = strategy_arguments(cfg, checkpointing)
    checkpointing = strategy.pop("activation_checkpointing", checkpointing)
    return TrainingArguments(
        output_dir=str(run_dir.checkpoints_dir),
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        per_device_eval_batch_size=cfg.per_device_eval_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.num_train_epochs,
        max_steps=cfg.max_steps,
        max_grad_norm=cfg.max_grad_norm,
        lr_scheduler_type=cfg.lr_scheduler_type,
        lr_scheduler_kwargs=cfg.lr_scheduler_kwargs or {},
        warmup_steps=cfg.warmup_steps if cfg.warmup_steps else cfg.warmup_ratio,
        optim=cfg.optim,
        weight_decay=cfg.weight_decay,
        adam_beta1=cfg.adam_beta1,
        adam_beta2=cfg.adam_beta2,
        adam_epsilon=cfg.adam_epsilon,
        neftune_noise_alpha=cfg.neftune_noise_alpha,
        bf16=precision.name == "bf16",
        fp16=precision.name == "fp16",
        **checkpointing_arguments(checkpointing),
        seed=cfg.seed,
        data_seed=cfg.data_seed,
        logging_steps=cfg.logging_steps,
        logging_nan_inf_filter=False,  # a NaN must show, not be averaged away
        save_strategy=cfg.save_strategy,
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        save_only_model=cfg.save_only_model,
        eval_strategy=eval_strategy,
        eval_steps=cfg.eval_steps if eval_strategy == "steps" else None,
        eval_on_start=cfg.eval_on_start and has_eval,
        report_to=report_to,
        run_name=cfg.run_name,
        use_cpu=cfg.use_cpu or precision.device == "cpu",
        ddp_timeout=cfg.ddp_timeout,
        ddp_backend=_ddp_backend(precision),
        # Unset: every trainable weight gets a gradient each step (frozen ones are not DDP's concern), except the
        # experts a batch did not route to; searching for unused ones costs a graph walk per step.
        ddp_find_unused_parameters=moe if cfg.ddp_find_unused_parameters is None else cfg.ddp_find_unused_parameters,
        torch_compile=cfg.torch_compile,
        dataloader_num_workers=cfg.dataloader_num_workers,
        remove_unused_columns=False,
        disable_tqdm=True,
        dataloader_pin_memory=precision.device == "cuda",
        **strategy,  # DeepSpeed / FSDP2: the planner lets them through only on a GPU host that can run them
    )


def checkpointing_arguments(on: bool) -> dict[str, Any]:
    """transformers 5.2x calls it activation checkpointing; earlier 5.x releases, gradient checkpointing."""
    import dataclasses

    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    key = "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
    return {key: on, f"{key}_kwargs": {"use_reentrant": False}}


def _ddp_backend(precision: Precision) -> str | None:
    """torchrun on a CPU host: gloo, named (accelerate would pick MPI where torch has it, which torchrun does not set
    up). Only under a launcher: accelerate takes any named backend as a sign of a distributed run."""
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
    return "gloo" if launched and precision.device == "cpu" else None


def guard_keeps_weights(cfg: Any, model: Any) -> bool:
    """Whether the divergence guard can keep CPU copies of the trainable weights (two at a time). Not of weights
    sharded across ranks (ZeRO-3, FSDP: a rank holds only its shard), nor when the copies would take more than
    half of the memory the host has free (a large full fine-tune); the guard then still stops a diverging run."""
    import psutil

    if cfg.fsdp or sharding_of(cfg.deepspeed, cfg.fsdp).weights:
        log.info("divergence guard: weights are sharded across ranks, so no last-good copy is kept")
        return False
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    if 2 * trainable > psutil.virtual_memory().available // 2:
        log.warning("divergence guard: two copies of the %.1f GiB of trainable weights would not fit host memory; "
                    "a diverging run is stopped without a last-good copy", trainable / 2**30)
        return False
    return True


def has_experts(model: Any) -> bool:
    """A mixture-of-experts model: some experts may get no token, hence no gradient, in a step."""
    config = getattr(model, "config", None)
    keys = ("num_experts", "num_local_experts", "n_routed_experts", "moe_num_experts")
    return any((getattr(config, key, None) or 0) > 1 for key in keys)


def use_gradient_checkpointing(cfg: Any, precision: Precision) -> bool:
    """Explicit value wins. Auto: on only on a GPU whose free memory is tight; it costs ~30% speed."""
    if cfg.gradient_checkpointing is not None:
        return bool(cfg.gradient_checkpointing)
    if precision.device != "cuda":
        return False
    import torch

    free, total = torch.cuda.mem_get_info()
    return free < 0.5 * total


def resolve_resume(value: str | None, run_dir: RunDir, config_dir: Path | None) -> str | None:
    if not value:
        return None
    if value == "last":
        last = _last_checkpoint(run_dir.checkpoints_dir)
        if last is None:
            raise EngineError(f"resume_from_checkpoint: last, but {run_dir.checkpoints_dir} has no checkpoint",
                              hint="start without resume_from_checkpoint, or give a checkpoint directory")
        return last
    path = Path(value).expanduser()
    candidates = [path] if path.is_absolute() else [*([config_dir / path] if config_dir else []), Path.cwd() / path]
    for candidate in candidates:
        if (candidate / "trainer_state.json").is_file():
            return str(candidate.resolve())
    looked = ", ".join(str(c.resolve()) for c in candidates)
    raise EngineError(f"resume_from_checkpoint: no checkpoint (trainer_state.json) at {looked}",
                      hint="give a checkpoint-N directory or 'last'")


def resolve_output_dir(cfg: Any, run_dir: RunDir, config_dir: Path | None) -> Path:
    if not cfg.output_dir:
        return run_dir.default_output_dir
    path = Path(cfg.output_dir).expanduser()
    return path if path.is_absolute() else (config_dir or Path.cwd()) / path


def _final_eval(trainer: Any) -> dict[str, Any]:
    """The Trainer already evaluates at the last step when eval_strategy says so; don't evaluate twice."""
    step = trainer.state.global_step
    done = [entry for entry in trainer.state.log_history if "eval_loss" in entry and entry.get("step") == step]
    if done:
        return {key: value for key, value in done[-1].items() if key.startswith("eval_")}
    return trainer.evaluate()


def _last_checkpoint(directory: Path) -> str | None:
    # A whole checkpoint only: the Trainer writes trainer_state.json last, and a worker killed mid-save (a lost
    # node) leaves a folder without it.
    checkpoints = [p for p in directory.glob("checkpoint-*")
                   if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file()]
    if not checkpoints:
        return None
    return str(max(checkpoints, key=lambda p: int(p.name.split("-")[-1])))


def _total_steps(trainer: Any) -> int | None:
    args = trainer.args
    if args.max_steps and args.max_steps > 0:
        return args.max_steps
    batches = len(trainer.get_train_dataloader())
    per_epoch = max(1, batches // args.gradient_accumulation_steps)
    import math

    return math.ceil(per_epoch * args.num_train_epochs)


def _check_reporters(report_to: list[str]) -> None:
    import importlib.util

    packages = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}
    for name in report_to:
        if name == "all":
            continue
        package = packages.get(name)
        if package and importlib.util.find_spec(package) is None:
            raise EngineError(f"report_to: {name} needs the {package} package, which is not installed",
                              hint=f"pip install {package}, or remove {name} from report_to")
