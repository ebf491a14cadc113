"""What the task use-cases return and the API sends: camelCase JSON built from the store's rows."""

from __future__ import annotations

import shlex
import time
from itertools import islice
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from tuneforge.planning.devices import Device
from tuneforge.service.runtime.devices import Holder
from tuneforge.service.runtime.ingest import finite_number
from tuneforge.store import Checkpoint, Evaluation, Experiment, MetricPoint, Task

# Bounds on what getTaskSamples returns from completions.jsonl (a run-directory file: hostile input).
MAX_SAMPLE_TEXT = 4000  # characters of a prompt or completion
MAX_SAMPLE_GRADERS = 16  # scores / reasons per sample
MAX_GRADER_NAME = 64
MAX_REASON_TEXT = 500
MAX_STEP_SAMPLES = 64  # samples returned for one step
MAX_SAMPLE_STEPS = 2000  # steps listed


class View(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, serialize_by_alias=True)


class CheckpointView(View):
    step: int
    path: str
    created_at: float


class CheckpointFile(CheckpointView):
    """A saved checkpoint and whether its folder is still on disk."""

    exists: bool


class TaskSummary(View):
    """A row of the task list."""

    id: int
    name: str
    description: str
    owner_id: int | None
    experiment_id: int | None
    status: str
    progress: float
    base_model: str
    dataset_path: str
    output_path: str
    stage: str
    finetuning_type: str
    step: int
    total_steps: int | None
    epoch: float | None
    loss: float | None
    tokens_trained: int
    tokens_per_second: float | None
    elapsed_s: float | None
    eta_s: float | None
    created_at: float
    start_time: float | None
    end_time: float | None


class TaskDetail(TaskSummary):
    """Everything the native task API has always returned for a task, plus what the console shows."""

    training_args: dict[str, Any]
    auto_values: list[dict[str, Any]]
    gpu_config: dict[str, Any]
    devices: list[int]
    estimate: dict[str, Any] | None
    command: str | None
    command_args: list[str] | None
    log_path: str
    run_dir: str
    error_message: str | None
    exit_code: int | None
    pid: int | None
    metrics: dict[str, Any]
    checkpoints: list[CheckpointView]


class TaskList(View):
    total: int
    page: int
    page_size: int
    items: list[TaskSummary]


class TaskDeleted(View):
    id: int
    deleted: bool
    output_path: str
    output_kept: bool = Field(description="The output model files stay on disk when a task is deleted.")


class TaskEstimate(View):
    """What createTask would resolve and need, without creating anything."""

    estimate: dict[str, Any] | None = Field(description="Memory and time: the planner's estimate.")
    auto_values: list[dict[str, Any]] = Field(description="Each 'auto' argument with the value chosen and why.")
    training_args: dict[str, Any] = Field(description="The resolved training arguments (snake_case keys).")
    dataset: dict[str, Any] | None = Field(description="Samples per dataset, token lengths and truncation.")
    devices: list[int] | None = Field(description="The devices asked for; null: any free ones.")
    device_count: int


class MetricSeries(View):
    """The chart's data: one list per series, x = step."""

    task_id: int
    status: str
    loss: list[tuple[int, float]]
    eval_loss: list[tuple[int, float]]
    learning_rate: list[tuple[int, float]]
    grad_norm: list[tuple[int, float]]
    tokens: list[tuple[int, int]]
    stage: dict[str, list[tuple[int, float]]] = Field(
        default_factory=dict, description="The stage's own figures by TRL's log name (rewards/margins, kl, reward, "
        "…), each a list of [step, value]; evaluation ones are prefixed eval_.")
    last_seq: int


class CompletionSample(View):
    """One completion sampled during GRPO / PPO training, with its reward and each grader's score and reason."""

    step: int
    prompt: str
    completion: str
    reward: float | None
    scores: dict[str, float] = Field(description="grader name -> score")
    reasons: dict[str, str] = Field(description="grader name -> why it gave that score (when it said)")
    truncated: bool = Field(False, description=f"a text was cut to {MAX_SAMPLE_TEXT} characters for display")


class TaskSamples(View):
    """The completions of one step from completions.jsonl, and the steps that have any."""

    task_id: int
    status: str
    step: int | None = Field(description="The step shown: the one asked for, else the last one with samples.")
    steps: list[int] = Field(description="Steps with samples, ascending (the latest MAX_SAMPLE_STEPS).")
    samples: list[CompletionSample]
    total: int = Field(description="Samples of this step in the file (at most MAX_STEP_SAMPLES are returned).")
    skipped: int = Field(description="Lines left out: torn, not JSON, not a sample or over the size limit.")
    partial: bool = Field(description="The file is larger than the window read: earlier steps are not listed.")


class LogChunk(View):
    task_id: int
    status: str
    offset: int
    next_offset: int
    lines: list[str]


class ExperimentView(View):
    id: int
    name: str
    description: str
    owner_id: int | None
    base_model: str
    template: str
    finetuning_type: str
    stage: str
    dataset_path: str
    created_at: float
    tasks: list[dict[str, Any]] = []
    best_task_id: int | None = None


class ExperimentDeleted(View):
    id: int
    deleted: bool
    tasks_detached: int = Field(description="The experiment's finished tasks are kept, no longer in an experiment.")


class ExperimentList(View):
    total: int
    items: list[ExperimentView]


class DeviceTask(View):
    task_id: int
    task_name: str


class DeviceHolder(View):
    kind: str = Field(description="task | evaluation | deployment")
    id: int
    name: str | None = Field(description="The task's or deployment's name, or the evaluated model's; null for "
                                         "another user's work.")


class DeviceView(View):
    index: int
    kind: str = Field(description="cuda | cpu (a CPU slot on a host without GPUs)")
    name: str
    total_memory: int = Field(description="Bytes; a CPU slot gets its share of the system RAM.")
    free_memory: int = Field(description="Bytes free now.")
    busy: bool = Field(description="Held by a task, an evaluation or a deployment.")
    task: DeviceTask | None = Field(description="The running or stopping task on this device.")
    holder: DeviceHolder | None = Field(default=None, description="Whatever holds this device: a running or "
                                        "stopping task, a running evaluation or a live deployment.")


def device_view(device: Device, holder: Holder | None) -> DeviceView:
    """A device as the inventory shows it; `task` stays for the clients that read it (set when a task the viewer may
    see holds the device)."""
    task = None
    if holder is not None and holder.kind == "task" and holder.name is not None:
        task = DeviceTask(task_id=holder.id, task_name=holder.name)
    shown = DeviceHolder(kind=holder.kind, id=holder.id, name=holder.name) if holder else None
    return DeviceView(index=device.index, kind=device.kind, name=device.name, total_memory=device.total_memory,
                      free_memory=device.free_memory, busy=holder is not None, task=task, holder=shown)


class DeviceInventory(View):
    kind: str
    devices: list[DeviceView]
    queued: bool = Field(description="Whether any task is waiting for a device.")


def task_summary(task: Task) -> dict[str, Any]:
    end = task.ended_at or (time.time() if task.started_at else None)
    return {
        "id": task.id, "name": task.name, "description": task.description, "owner_id": task.owner_id,
        "experiment_id": task.experiment_id, "status": task.status, "progress": task.progress,
        "base_model": task.base_model, "dataset_path": task.dataset, "output_path": task.output_path,
        "stage": task.stage, "finetuning_type": task.finetuning_type, "step": task.step,
        "total_steps": task.total_steps, "epoch": task.epoch, "loss": task.loss,
        "tokens_trained": task.tokens_trained, "tokens_per_second": task.tokens_per_second,
        "elapsed_s": round(end - task.started_at, 1) if task.started_at and end else None,
        "eta_s": task.eta_s, "created_at": task.created_at, "start_time": task.started_at,
        "end_time": task.ended_at,
    }


def task_detail(task: Task, checkpoints: list[Checkpoint]) -> TaskDetail:
    return TaskDetail(
        **task_summary(task), training_args=task.training_args, auto_values=task.auto_values,
        gpu_config=task.gpu_config, devices=task.devices or [], estimate=task.estimate,
        command=shlex.join(task.command) if task.command else None, command_args=task.command,
        log_path=task.log_path, run_dir=task.run_dir, error_message=task.error_message, exit_code=task.exit_code,
        pid=task.pid, metrics=task.metrics,
        checkpoints=[CheckpointView(step=c.step, path=c.path, created_at=c.created_at) for c in checkpoints],
    )


def metric_series(task: Task, points: list[MetricPoint]) -> MetricSeries:
    def pairs(kind: str, attr: str) -> list[tuple[int, Any]]:
        return [(p.step, getattr(p, attr)) for p in points if p.kind == kind and getattr(p, attr) is not None]

    return MetricSeries(task_id=task.id, status=task.status, loss=pairs("train", "loss"),
                        eval_loss=pairs("eval", "eval_loss"), learning_rate=pairs("train", "learning_rate"),
                        grad_norm=pairs("train", "grad_norm"), tokens=pairs("train", "tokens"),
                        stage=stage_series(points), last_seq=task.last_seq)


def stage_series(points: list[MetricPoint]) -> dict[str, list[tuple[int, float]]]:
    """The points' stage figures (MetricPoint.extra) as one [step, value] list per name, in seq order; an
    evaluation's names get the eval_ prefix if the worker left it off, so they never join a training series."""
    series: dict[str, list[tuple[int, float]]] = {}
    for point in points:
        for name, value in (point.extra or {}).items():
            if point.kind == "eval" and not name.startswith("eval_"):
                name = f"eval_{name}"
            series.setdefault(name, []).append((point.step, value))
    return series


def completion_sample(line: Any) -> CompletionSample | None:
    """A completions.jsonl line as a sample, texts cut to their display limits; None when it is not one (no integer
    step, no prompt or completion text). Scores that are not finite numbers and reasons that are not text are
    dropped."""
    if not isinstance(line, dict):
        return None
    step, prompt, completion = line.get("step"), line.get("prompt"), line.get("completion")
    if type(step) is not int or step < 0 or not isinstance(prompt, str) or not isinstance(completion, str):
        return None
    scores = {name[:MAX_GRADER_NAME]: score for name, value in _entries(line.get("scores"))
              if (score := finite_number(value)) is not None}
    reasons = {name[:MAX_GRADER_NAME]: value[:MAX_REASON_TEXT] for name, value in _entries(line.get("reasons"))
               if isinstance(value, str) and value}
    truncated = len(prompt) > MAX_SAMPLE_TEXT or len(completion) > MAX_SAMPLE_TEXT
    return CompletionSample(step=step, prompt=prompt[:MAX_SAMPLE_TEXT], completion=completion[:MAX_SAMPLE_TEXT],
                            reward=finite_number(line.get("reward")), scores=scores, reasons=reasons,
                            truncated=truncated)


def _entries(value: Any) -> list[tuple[str, Any]]:
    if not isinstance(value, dict):
        return []
    return [(name, item) for name, item in islice(value.items(), MAX_SAMPLE_GRADERS) if isinstance(name, str) and name]



def experiment_view(experiment: Experiment, tasks: list[Task] | None = None) -> ExperimentView:
    rows = [_experiment_row(t) for t in tasks or []]
    scored = [r for r in rows if r["status"] == "completed" and r["score"] is not None]
    best = min(scored, key=lambda r: r["score"])["id"] if scored else None
    return ExperimentView(id=experiment.id, name=experiment.name, description=experiment.description,
                          owner_id=experiment.owner_id, base_model=experiment.base_model,
                          template=experiment.template, finetuning_type=experiment.finetuning_type,
                          stage=experiment.stage, dataset_path=experiment.dataset, created_at=experiment.created_at,
                          tasks=rows, best_task_id=best)


HYPER_PARAMETERS = ("learning_rate", "num_train_epochs", "per_device_train_batch_size", "gradient_accumulation_steps",
                    "lora_rank", "lora_alpha", "lora_dropout", "cutoff_len", "lr_scheduler_type", "warmup_ratio")


def _experiment_row(task: Task) -> dict[str, Any]:
    """A task's final figures side by side: the best run is the completed one with the lowest eval loss (or, with
    no evaluation, the lowest final training loss)."""
    metrics = task.metrics or {}
    eval_loss = metrics.get("eval_loss")
    train_loss = metrics.get("train_loss", task.loss)
    return {
        "id": task.id, "name": task.name, "status": task.status, "progress": task.progress,
        "hyperParameters": {k: task.training_args.get(k) for k in HYPER_PARAMETERS if k in task.training_args},
        "trainLoss": train_loss, "evalLoss": eval_loss, "perplexity": metrics.get("perplexity"),
        "tokensTrained": task.tokens_trained, "runtimeS": metrics.get("train_runtime"),
        "score": eval_loss if eval_loss is not None else train_loss,
    }


def evaluation_view(row: Evaluation) -> dict[str, Any]:
    return {"id": row.id, "modelId": row.model_id, "baseline": row.baseline, "dataset": row.dataset,
            "split": row.split, "status": row.status, "stage": row.stage, "percentage": round(row.percentage, 1),
            "message": row.message, "scores": row.scores, "error": row.error_message, "options": row.options,
            "jobDir": row.job_dir, "devices": list(row.devices or []), "createdAt": row.created_at,
            "finishedAt": row.finished_at}
