"""What POST /v1/fine_tuning/jobs takes, as OpenAI's API reference describes it (the `openai` package's
JobCreateParams): the bounds are OpenAI's own, so a request OpenAI refuses is refused here with the same field.

Every hyperparameter is "auto" or a value; FineTuningService resolves "auto" (see hyperparameters.py) and refuses
what tuneforge cannot honour. Unknown fields are refused, not ignored."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Auto = Literal["auto"]
BatchSize = Auto | Annotated[int, Field(ge=1, le=256)]
Epochs = Auto | Annotated[int, Field(ge=1, le=50)]
Multiplier = Auto | Annotated[float, Field(gt=0, le=1000)]  # OpenAI sets no upper bound; 1000 × any base is absurd
Beta = Auto | Annotated[float, Field(gt=0, le=2)]
ComputeMultiplier = Auto | Annotated[float, Field(gt=0.00001, le=10)]
Interval = Auto | Annotated[int, Field(ge=1, le=1_000_000)]
ReasoningEffort = Literal["default", "low", "medium", "high"]

METADATA_PAIRS, METADATA_KEY_CHARS, METADATA_VALUE_CHARS = 16, 64, 512
SUFFIX_CHARS = 64
FILE_ID_CHARS = 64
MODEL_CHARS = 1024
SEED_MAX = 2_147_483_647


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SupervisedHyperparameters(_Strict):
    batch_size: BatchSize = Field("auto", description="Examples per optimizer step.")
    learning_rate_multiplier: Multiplier = Field("auto", description="Scales the method's base learning rate.")
    n_epochs: Epochs = Field("auto", description="Passes over the training file.")


class DpoHyperparameters(SupervisedHyperparameters):
    beta: Beta = Field("auto", description="DPO's pull towards the reference model (pref_beta).")


class ReinforcementHyperparameters(SupervisedHyperparameters):
    reasoning_effort: ReasoningEffort = Field("default", description="Only 'default': tuneforge's models have no "
                                              "reasoning-effort control.")
    compute_multiplier: ComputeMultiplier = Field("auto", description="Scales the answers sampled per prompt "
                                                  "(num_generations, 4 at 1.0).")
    eval_interval: Interval = Field("auto", description="Training steps between evaluations of the validation file.")
    eval_samples: Interval = Field("auto", description="Answers sampled per validation prompt: tuneforge samples "
                                   "num_generations, so only that number (or 'auto') is accepted.")


class SupervisedMethod(_Strict):
    hyperparameters: SupervisedHyperparameters | None = None


class DpoMethod(_Strict):
    hyperparameters: DpoHyperparameters | None = None


class ReinforcementMethod(_Strict):
    grader: dict[str, Any] = Field(description="An OpenAI grader object (string_check, text_similarity, python, "
                                   "score_model, multi): the reward.")
    hyperparameters: ReinforcementHyperparameters | None = None


class Method(_Strict):
    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: SupervisedMethod | None = None
    dpo: DpoMethod | None = None
    reinforcement: ReinforcementMethod | None = None


class WandbSettings(_Strict):
    project: str = Field(min_length=1, max_length=128)
    name: str | None = Field(None, max_length=128)
    entity: str | None = Field(None, max_length=128)
    tags: list[Annotated[str, Field(max_length=64)]] | None = Field(None, max_length=32)


class Integration(_Strict):
    type: Literal["wandb"]
    wandb: WandbSettings


class JobCreateRequest(_Strict):
    model: str = Field(min_length=1, max_length=MODEL_CHARS, description="A registered model's name, or a base "
                       "model tuneforge can train (a model folder, a hub id, 'bundled').")
    training_file: str = Field(min_length=1, max_length=FILE_ID_CHARS, description="An uploaded file's id (file-…).")
    validation_file: str | None = Field(None, min_length=1, max_length=FILE_ID_CHARS)
    hyperparameters: SupervisedHyperparameters | None = Field(  # marked deprecated in the OpenAPI document only
        None, json_schema_extra={"deprecated": True}, description="Deprecated: method.supervised.hyperparameters.")
    method: Method | None = None
    suffix: str | None = Field(None, min_length=1, max_length=SUFFIX_CHARS,
                               description="Up to 64 characters added to the fine-tuned model's name.")
    seed: int | None = Field(None, ge=0, le=SEED_MAX)
    metadata: dict[str, str] | None = Field(None, max_length=METADATA_PAIRS,
                                            description="Up to 16 pairs: keys ≤ 64 characters, values ≤ 512.")
    integrations: list[Integration] | None = Field(None, max_length=5)

    @field_validator("metadata")
    @classmethod
    def _metadata_bounds(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for key, text in (value or {}).items():
            if len(key) > METADATA_KEY_CHARS:
                raise ValueError(f"key {key[:20]!r}… is longer than {METADATA_KEY_CHARS} characters")
            if len(text) > METADATA_VALUE_CHARS:
                raise ValueError(f"the value of {key!r} is longer than {METADATA_VALUE_CHARS} characters")
        return value

    @field_validator("model", "training_file", "validation_file", "suffix")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("must not contain NUL bytes")
        return value


class GraderRunRequest(_Strict):
    grader: dict[str, Any] = Field(description="An OpenAI grader object.")
    model_sample: str = Field(max_length=128 * 1024, description="The model's answer: {{sample.output_text}}, and "
                              "{{sample.output_json}} when it is JSON.")
    item: dict[str, Any] | None = Field(None, description="The dataset row: {{item.…}}.")


class GraderValidateRequest(_Strict):
    grader: dict[str, Any] = Field(description="An OpenAI grader object.")
