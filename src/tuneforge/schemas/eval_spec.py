"""SPEC.json of an evaluation job (`python -m tuneforge.engine.evaluate SPEC.json`): score one or more models on the
same held-out samples — eval loss and perplexity, then generation scored with BLEU-4 and ROUGE-1/2/L and with the
spec's graders — and write results.json. Two models (base and fine-tuned) give the before / after comparison in one
run.

Graders (OpenAI's grader objects, tuneforge.graders) see each generated answer as the *sample*
(`{{sample.output_text}}`, `{{sample.output_json.…}}`) and its dataset row as the *item*: the row as the file has it
(alpaca's `{{item.output}}`, `{{item.instruction}}`; an OpenAI chat row's `{{item.messages}}`; any extra column),
plus `{{item.reference_answer}}` — the reference answer the model is scored against (the record's final assistant
turn, whatever the format calls it) — unless the row has a field of that name itself. This is the item a GRPO run
gives the same grader for the same row, so training and evaluation report the same score for the same answer.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from tuneforge.schemas.graders import Grader, LabelModelGrader, MultiGrader, ScoreModelGrader

EVAL_SPEC_VERSION = 1
MAX_GRADERS = 16

RESULTS_FILE = "results.json"  # written next to SPEC.json; its layout is EvalResults below
PREDICTIONS_FILE = "generated_predictions.jsonl"  # per model, in JOB/<label>/, LLaMA-Factory's {prompt, predict, label}

# events.jsonl of an evaluation job: the same event types as a task, with these fields.
EVAL_EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "started": ("pid", "models", "dataset", "split"),
    "progress": ("stage", "percentage", "message"),  # stage: data | loading | loss | generation | grading | results
    "completed": ("results_file", "split", "samples", "scores", "predictions"),  # scores: label -> headline scores
    "failed": ("error", "hint"),
}


class EvalModel(BaseModel):
    """One model under evaluation: a base model, optionally with a LoRA adapter applied (not merged)."""

    model_config = ConfigDict(extra="forbid")

    label: str = Field(min_length=1, max_length=64, description="Column name in the report, e.g. 'base', 'fine-tuned'.")
    base_model: str = Field(description="A local directory, a .gguf file, a hub id, or 'bundled'.")
    adapter_dir: str | None = Field(default=None, description="A LoRA adapter directory applied on base_model.")
    template: str | None = Field(default=None, description="Chat template; None: the one the adapter was trained "
                                                           "with, else the tokenizer's own.")
    system: str | None = Field(default=None, description="System prompt for samples without one; None: the adapter's "
                                                         "training default_system, else the template's default. Give "
                                                         "the base the fine-tune's, so only the weights differ.")


class EvalSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = EVAL_SPEC_VERSION
    job_id: str | None = None
    models: list[EvalModel] = Field(min_length=1, max_length=4)
    dataset: str = Field(description="A dataset_info.json key (e.g. 'identity@v2'), a .json/.jsonl file or a folder "
                                     "with train/valid/test files; same rules as training's `dataset`.")
    dataset_dir: str = Field(default="data", description="Folder holding dataset_info.json.")
    split: Literal["test", "valid", "train"] = Field(
        default="test", description="Which split to score; 'test' falls back to 'valid' when there is no test file.")
    max_samples: int = Field(default=50, ge=1, le=100_000, description="Score at most this many samples (in order).")
    cutoff_len: int = Field(default=1024, ge=8, description="Longest prompt + answer in tokens for the loss.")
    max_new_tokens: int = Field(default=128, ge=1, le=8192, description="Longest generated answer.")
    batch_size: int = Field(default=4, ge=1, le=256, description="Samples per forward / generate call.")
    temperature: float = Field(default=0.0, ge=0, le=2, description="0: greedy decoding (reproducible scores).")
    top_p: float = Field(default=1.0, gt=0, le=1)
    compute_loss: bool = Field(default=True, description="Eval loss and perplexity on the reference answers.")
    predict: bool = Field(default=True, description="Generate answers and score them with BLEU-4 / ROUGE.")
    show_samples: int = Field(default=5, ge=0, le=100, description="How many best and worst samples to list.")
    seed: int = 42
    graders: list[Grader] = Field(default_factory=list, max_length=MAX_GRADERS, description=(
        "Graders (OpenAI's grader objects) scoring each generated answer (sample) against its dataset row (item, "
        "with item.reference_answer added); each model's mean score per grader is reported by the grader's name."))

    @field_validator("graders")
    @classmethod
    def _runnable_graders(cls, graders: list[Grader], info: ValidationInfo) -> list[Grader]:
        names = [g.name for g in graders]
        if len(set(names)) != len(names):
            raise ValueError(f"names must differ (each names a score in the report), got {names}")
        if graders and info.data.get("predict") is False:
            raise ValueError("graders score generated answers: set predict: true, or give no graders")
        judged = [g.name for g in graders if _needs_judge(g)]
        if judged:
            raise ValueError(f"{judged} ask a judge model (score_model / label_model), which an evaluation job "
                             "cannot reach; try them on the answers through the graders API instead")
        return graders

    @model_validator(mode="after")
    def _check(self) -> EvalSpec:
        labels = [m.label for m in self.models]
        if len(set(labels)) != len(labels):
            raise ValueError(f"models: labels must differ, got {labels}")
        if not (self.compute_loss or self.predict):
            raise ValueError("compute_loss and predict are both false: nothing to evaluate")
        return self


def _needs_judge(grader: Grader) -> bool:
    if isinstance(grader, MultiGrader):
        return any(_needs_judge(sub) for sub in grader.graders.values())
    return isinstance(grader, ScoreModelGrader | LabelModelGrader)


class SampleScore(BaseModel):
    """One model's answer to one sample; the text scores are None when the job did not generate (predict: false)."""

    text: str = ""
    bleu_4: float | None = None
    rouge_1: float | None = None
    rouge_2: float | None = None
    rouge_l: float | None = None
    loss: float | None = None  # mean token loss on the reference answer
    graders: dict[str, float] = Field(default_factory=dict)  # grader name -> this answer's score
    grader_errors: dict[str, str] = Field(default_factory=dict)  # grader name -> why it scored 0 (only failures)


class EvalSample(BaseModel):
    index: int
    prompt: str  # the last user turn (history and system shown in `messages`)
    messages: list[dict[str, str]] = Field(default_factory=list)
    reference: str
    item: dict[str, Any] | None = None  # what the graders read as `item` (only when the job has graders)
    outputs: dict[str, SampleScore] = Field(default_factory=dict)  # by model label


class ModelScores(BaseModel):
    label: str
    eval_loss: float | None = None
    perplexity: float | None = None
    bleu_4: float | None = None  # 0-100, as LLaMA-Factory's predict_bleu-4
    rouge_1: float | None = None
    rouge_2: float | None = None
    rouge_l: float | None = None
    samples: int = 0
    runtime_s: float = 0.0
    tokens_per_second: float | None = None
    graders: dict[str, float] = Field(default_factory=dict)  # grader name -> mean score over the samples
    grader_failures: dict[str, int] = Field(default_factory=dict)  # grader name -> samples it could not grade
    best: list[int] = Field(default_factory=list)  # sample indices, best first (by ROUGE-L, then BLEU-4)
    worst: list[int] = Field(default_factory=list)  # worst first


class EvalResults(BaseModel):
    models: list[ModelScores]
    samples: list[EvalSample]
    dataset: str
    split: str
