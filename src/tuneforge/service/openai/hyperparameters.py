"""An OpenAI `method` (or the deprecated top-level `hyperparameters`) → the training arguments of a tuneforge LoRA
task, with every "auto" resolved to the value it stands for and every setting tuneforge cannot honour refused.

"auto", the way OpenAI documents it:
- n_epochs: OpenAI's rule (its fine-tuning data-preparation cookbook): 3 epochs; for a small file enough that ~100
  examples are seen (100 // examples, at most 25); for a large one at most ~25,000 (25,000 // examples, at least 1).
- batch_size: ~0.2% of the examples, at least 1 and at most 256 (OpenAI's documented default).
- learning_rate_multiplier: 1.0. OpenAI's old rule (0.05 / 0.1 / 0.2 by batch size) scaled a pre-training rate; the
  rate it multiplies here is already the method's usual LoRA rate, BASE_LEARNING_RATE below, which is what its
  current jobs report as 1.0.
- beta (DPO): 0.1, TRL's and tuneforge's default (pref_beta).
- compute_multiplier (reinforcement): 1.0, i.e. 4 answers sampled per prompt (num_generations).
- eval_interval: the steps of one epoch, so the validation file is scored once an epoch; eval_samples: num_generations.

learning_rate = learning_rate_multiplier × BASE_LEARNING_RATE[type]: the planner's rate for LoRA (1e-4), and a
tenth of it for DPO and reinforcement (GRPO), which drift from their reference at SFT rates (planning.auto_values).

batch_size is the global batch (examples per optimizer step): per_device_train_batch_size × gradient_accumulation
_steps on one device, the largest micro-batch of at most MAX_MICRO_BATCH sequences that divides it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tuneforge.planning.auto_values import LEARNING_RATES
from tuneforge.schemas import ConfigProblem
from tuneforge.schemas.stages import stage_info
from tuneforge.service.openai.job_requests import (
    DpoHyperparameters,
    JobCreateRequest,
    ReinforcementHyperparameters,
    SupervisedHyperparameters,
)

STAGES = {"supervised": "sft", "dpo": "dpo", "reinforcement": "grpo"}
BASE_LEARNING_RATE = {kind: LEARNING_RATES["lora"] / (10 if stage_info(stage).preference else 1)
                      for kind, stage in STAGES.items()}
TARGET_EPOCHS, MIN_TARGET_EXAMPLES, MAX_TARGET_EXAMPLES = 3, 100, 25_000
MIN_DEFAULT_EPOCHS, MAX_DEFAULT_EPOCHS = 1, 25
BATCH_SHARE, MAX_BATCH = 0.002, 256
DEFAULT_BETA = 0.1
GENERATIONS_PER_UNIT = 4  # num_generations at compute_multiplier 1.0
MIN_GENERATIONS, MAX_GENERATIONS = 2, 64
MAX_MICRO_BATCH = 8  # sequences per forward pass


@dataclass
class ResolvedMethod:
    """The method as the job reports it (`hyperparameters` with "auto" replaced) and the task's arguments."""

    type: str
    hyperparameters: dict[str, Any]
    training_args: dict[str, Any]
    problems: list[ConfigProblem] = field(default_factory=list)


def resolve_method(request: JobCreateRequest, examples: int, has_validation: bool) -> ResolvedMethod:
    kind = request.method.type if request.method else "supervised"
    given, where, problems = _given_hyperparameters(request, kind)
    resolved = ResolvedMethod(kind, {}, {"stage": STAGES[kind], "finetuning_type": "lora"}, problems)
    _common(resolved, given, examples)
    if isinstance(given, DpoHyperparameters):
        beta = DEFAULT_BETA if given.beta == "auto" else given.beta
        resolved.hyperparameters["beta"] = beta
        resolved.training_args["pref_beta"] = beta
    if isinstance(given, ReinforcementHyperparameters):
        _reinforcement(resolved, given, where, examples, has_validation)
    elif has_validation:  # OpenAI reports the validation loss as it goes: here once an epoch
        resolved.training_args |= {"eval_strategy": "epoch"}
    return resolved


def _given_hyperparameters(request: JobCreateRequest, kind: str
                           ) -> tuple[SupervisedHyperparameters, str, list[ConfigProblem]]:
    """The hyperparameters the request gives for its method (defaults: all "auto"), where they are in the request,
    and what contradicts: another method's section, or the deprecated top-level object for a method it is not."""
    problems = [ConfigProblem(f"method.{other}", f"is given, but method.type is {kind!r}")
                for other in STAGES if other != kind and request.method and getattr(request.method, other)]
    section = getattr(request.method, kind) if request.method else None
    nested = section.hyperparameters if section else None
    top = request.hyperparameters
    if top is not None and kind != "supervised":
        problems.append(ConfigProblem("hyperparameters", f"the deprecated top-level hyperparameters are supervised "
                                                         f"training's; give method.{kind}.hyperparameters"))
    elif top is not None and nested is not None and top != nested:
        problems.append(ConfigProblem("hyperparameters", "differs from method.supervised.hyperparameters: give "
                                                         "them once (the top-level object is deprecated)"))
    if nested is not None:
        return nested, f"method.{kind}.hyperparameters", problems
    if top is not None and kind == "supervised":
        return top, "hyperparameters", problems
    defaults = {"supervised": SupervisedHyperparameters, "dpo": DpoHyperparameters,
                "reinforcement": ReinforcementHyperparameters}[kind]()
    return defaults, f"method.{kind}.hyperparameters", problems


def _common(resolved: ResolvedMethod, given: SupervisedHyperparameters, examples: int) -> None:
    epochs = auto_epochs(examples) if given.n_epochs == "auto" else given.n_epochs
    batch = auto_batch_size(examples) if given.batch_size == "auto" else given.batch_size
    multiplier = 1.0 if given.learning_rate_multiplier == "auto" else given.learning_rate_multiplier
    resolved.hyperparameters |= {"n_epochs": epochs, "batch_size": batch, "learning_rate_multiplier": multiplier}
    resolved.training_args |= {"num_train_epochs": epochs,
                               "learning_rate": multiplier * BASE_LEARNING_RATE[resolved.type]}
    if resolved.type != "reinforcement":
        resolved.training_args |= micro_batches(batch, 1)


def _reinforcement(resolved: ResolvedMethod, given: ReinforcementHyperparameters, where: str, examples: int,
                   has_validation: bool) -> None:
    compute = 1.0 if given.compute_multiplier == "auto" else given.compute_multiplier
    generations = min(MAX_GENERATIONS, max(MIN_GENERATIONS, round(GENERATIONS_PER_UNIT * compute)))
    batch = resolved.hyperparameters["batch_size"]
    resolved.training_args |= {"num_generations": generations, **micro_batches(batch, generations)}
    resolved.hyperparameters |= {"compute_multiplier": compute, "reasoning_effort": given.reasoning_effort,
                                 "eval_samples": generations}
    if given.reasoning_effort != "default":
        resolved.problems.append(ConfigProblem(f"{where}.reasoning_effort", (
            f"{given.reasoning_effort!r} cannot be honoured: tuneforge's models have no reasoning-effort control; "
            "leave it out or give 'default'")))
    if given.eval_samples not in ("auto", generations):
        resolved.problems.append(ConfigProblem(f"{where}.eval_samples", (
            f"{given.eval_samples} cannot be honoured: tuneforge samples num_generations ({generations}, set by "
            "compute_multiplier) answers per validation prompt; leave it 'auto'")))
    if not has_validation:
        resolved.hyperparameters["eval_interval"] = None
        if given.eval_interval != "auto":
            resolved.problems.append(ConfigProblem(f"{where}.eval_interval", "needs a validation_file: without one "
                                                                            "there is nothing to evaluate"))
    else:
        batching = {key: resolved.training_args[key] for key in ("per_device_train_batch_size",
                                                                  "gradient_accumulation_steps")}
        interval = steps_per_epoch(examples, batching, generations) if given.eval_interval == "auto" \
            else given.eval_interval
        resolved.hyperparameters["eval_interval"] = interval
        resolved.training_args |= {"eval_strategy": "steps", "eval_steps": interval}


def auto_epochs(examples: int) -> int:
    """OpenAI's default number of epochs for a training file of `examples` examples."""
    if examples <= 0:
        return TARGET_EPOCHS
    if examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // examples)
    if examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // examples)
    return TARGET_EPOCHS


def auto_batch_size(examples: int) -> int:
    """OpenAI's default batch size: ~0.2% of the examples, between 1 and 256."""
    return max(1, min(MAX_BATCH, round(BATCH_SHARE * examples)))


def micro_batches(batch: int, sequences_per_example: int) -> dict[str, int]:
    """per_device_train_batch_size × gradient_accumulation_steps = `batch` examples (× their sequences: a
    reinforcement example is `num_generations` sampled answers), in the largest micro-batch that divides it and has
    at most MAX_MICRO_BATCH sequences (one example at the least)."""
    per_forward = max(1, MAX_MICRO_BATCH // sequences_per_example)
    examples = max(d for d in range(1, min(batch, per_forward) + 1) if batch % d == 0)
    return {"per_device_train_batch_size": examples * sequences_per_example,
            "gradient_accumulation_steps": batch // examples}


def steps_per_epoch(examples: int, training_args: dict[str, int], sequences_per_example: int = 1) -> int:
    """Optimizer steps in one epoch, as the Trainer counts them: forward passes (a last partial one counts) divided
    by the accumulation, at least 1."""
    per_forward = training_args["per_device_train_batch_size"] // sequences_per_example
    forwards = math.ceil(max(examples, 1) / per_forward)
    return max(1, forwards // training_args["gradient_accumulation_steps"])
