"""Registered models, their export jobs and their evaluations, as /models/* and /evaluations/* return them."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tuneforge.service.views import View


class ModelSummary(View):
    """A registered model as lists show it."""

    id: int
    name: str
    kind: str = Field(description="base | finetuned")
    description: str
    status: str = Field(description="ready | importing | failed (an object-store import)")
    progress: float = Field(description="Import progress, 0–100.")
    origin: str | None = Field(description="The URI an imported model was copied from.")
    error_message: str | None
    owner_id: int | None
    base_model: str
    created_at: float
    task_id: int | None
    checkpoint_step: int | None
    metrics: dict[str, Any] = Field(description="Headline losses: eval_loss, train_loss, loss.")


class LineageTask(View):
    id: int | None
    name: str | None


class Lineage(View):
    """Where a fine-tuned model comes from: base, task, step, datasets, configuration and metrics."""

    base_model: str
    task: LineageTask
    checkpoint_step: int | None
    datasets: list[str]
    training_config: dict[str, Any]
    metrics: dict[str, Any]


class ModelView(ModelSummary):
    adapter_path: str | None
    model_path: str | None
    merged: bool
    lineage: Lineage


class ModelList(View):
    total: int
    items: list[ModelSummary]


class ModelDeleted(View):
    id: int
    deleted: bool


class ExportJob(View):
    id: str
    model_id: int
    status: str = Field(description="running | completed | failed")
    output_dir: str
    gguf: str | None
    dtype: str
    max_shard_size_gb: float
    quantization: dict[str, Any] | None = Field(
        description="GPTQ settings (method, bits, groupSize, dataset, nsamples, maxlen), or null when not quantized."
    )
    stage: str | None
    percentage: float
    message: str | None
    files: list[str] | None = Field(description="The files written, once completed.")
    sizes: dict[str, Any] | None = Field(description="Bytes per file, once completed.")
    error: str | None
    hint: str | None = Field(description="What to do about the error.")


class ExportList(View):
    total: int
    items: list[ExportJob]


class EvaluationView(View):
    id: int
    model_id: int
    baseline: str | None = Field(description="What the model is compared with (label: source).")
    dataset: str
    split: str
    status: str = Field(description="running | completed | failed | stopped")
    stage: str | None
    percentage: float
    message: str | None
    scores: list[dict[str, Any]] = Field(description="Headline scores per model: eval_loss, perplexity, BLEU-4, "
                                         "ROUGE-1/2/L.")
    error: str | None
    options: dict[str, Any]
    job_dir: str
    devices: list[int] = Field(default_factory=list, description="The GPUs it holds while running (NVML indexes, "
                               "as /system/gpus lists them); empty on a host without GPUs.")
    created_at: float
    finished_at: float | None


class EvaluationDetail(EvaluationView):
    report: dict[str, Any] | None = Field(default=None, description="Only once completed: the before / after "
                                          "report with the best and worst samples.")


class ModelRecord(ModelView):
    """A model with its latest evaluations."""

    evaluations: list[EvaluationView]


class EvaluationList(View):
    total: int
    items: list[EvaluationView]


class EvaluationDeleted(View):
    id: int
    deleted: bool
