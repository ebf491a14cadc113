"""The objects /v1/fine_tuning/... answers with, field for field as OpenAI's API reference has them (the `openai`
package parses them into its FineTuningJob, FineTuningJobEvent, FineTuningJobCheckpoint and GraderRunResponse).

Where OpenAI's document contradicts itself the wider form is declared: a job's status includes `paused` (the
document has /pause and /resume but leaves `paused` out of the enum), and a grader run's `token_usage` may be a
number or an object (the schema says one, its example the other)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

JobStatus = Literal["validating_files", "queued", "running", "succeeded", "failed", "cancelled", "paused"]
AutoInt = int | Literal["auto"] | None
AutoFloat = float | Literal["auto"] | None


class JobError(BaseModel):
    code: str = Field(description="What failed: task_failed, publish_failed, task_deleted.")
    message: str
    param: str | None = Field(description="The request field at fault, when one is (training_file, …).")


class JobHyperparameters(BaseModel):
    """The resolved values of the three hyperparameters every method has ("auto" replaced)."""

    batch_size: AutoInt = None
    learning_rate_multiplier: AutoFloat = None
    n_epochs: AutoInt = None


class MethodSection(BaseModel):
    hyperparameters: dict[str, Any] = Field(description="The method's hyperparameters, resolved.")
    grader: dict[str, Any] | None = Field(None, description="The reward (reinforcement only).")


class JobMethod(BaseModel):
    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: MethodSection | None = None
    dpo: MethodSection | None = None
    reinforcement: MethodSection | None = None


class WandbView(BaseModel):
    project: str
    name: str | None = None
    entity: str | None = None
    tags: list[str] | None = None


class IntegrationView(BaseModel):
    type: Literal["wandb"]
    wandb: WandbView


class FineTuningJobView(BaseModel):
    id: str = Field(description="ftjob-…")
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    error: JobError | None
    fine_tuned_model: str | None = Field(description="The registered model the job made (ft:…); null until it "
                                         "succeeds.")
    finished_at: int | None
    hyperparameters: JobHyperparameters
    model: str
    organization_id: str
    result_files: list[str]
    seed: int
    status: JobStatus
    trained_tokens: int | None
    training_file: str
    validation_file: str | None
    estimated_finish: int | None = None
    integrations: list[IntegrationView] | None = None
    metadata: dict[str, str] | None = None
    method: JobMethod
    user_provided_suffix: str | None = None


class JobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJobView]
    has_more: bool


class JobEvent(BaseModel):
    id: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    data: dict[str, Any] | None = None
    type: Literal["message", "metrics"] = "message"


class JobEventList(BaseModel):
    object: Literal["list"] = "list"
    data: list[JobEvent]
    has_more: bool


class CheckpointMetrics(BaseModel):
    step: float | None = None
    train_loss: float | None = None
    train_mean_token_accuracy: float | None = None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None
    full_valid_loss: float | None = None
    full_valid_mean_token_accuracy: float | None = None


class JobCheckpoint(BaseModel):
    id: str = Field(description="ftckpt-…")
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int
    fine_tuned_model_checkpoint: str = Field(description="The registered model of this checkpoint (ft:…:ckpt-step-N).")
    fine_tuning_job_id: str
    metrics: CheckpointMetrics
    step_number: int


class JobCheckpointList(BaseModel):
    object: Literal["list"] = "list"
    data: list[JobCheckpoint]
    first_id: str | None
    last_id: str | None
    has_more: bool


class GraderRunErrors(BaseModel):
    formula_parse_error: bool = False
    sample_parse_error: bool = False
    truncated_observation_error: bool = False
    unresponsive_reward_error: bool = False
    invalid_variable_error: bool = False
    other_error: bool = False
    python_grader_server_error: bool = False
    python_grader_server_error_type: str | None = None
    python_grader_runtime_error: bool = False
    python_grader_runtime_error_details: str | None = None
    model_grader_server_error: bool = False
    model_grader_refusal_error: bool = False
    model_grader_parse_error: bool = False
    model_grader_server_error_details: str | None = None


class GraderRunMetadata(BaseModel):
    name: str
    type: str
    errors: GraderRunErrors
    execution_time: float = Field(description="Seconds the grading took.")
    scores: dict[str, Any] = Field(description="A multi grader's sub-graders' scores, by name.")
    token_usage: int | dict[str, Any] | None = Field(description="Judge-model tokens; null: not counted here.")
    sampled_model_name: str | None = Field(description="The judge model of a model grader.")


class GraderRunResult(BaseModel):
    reward: float
    metadata: GraderRunMetadata
    sub_rewards: dict[str, Any]
    model_grader_token_usage_per_model: dict[str, Any]


class GraderValidated(BaseModel):
    grader: dict[str, Any] = Field(description="The grader object, as validated.")
