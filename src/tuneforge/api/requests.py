"""Request bodies, in camelCase; training-argument keys inside trainingArgs stay snake_case."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from tuneforge.schemas import ConfigProblem
from tuneforge.service.errors import InvalidInput


class Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class CreateTaskBody(Body):
    name: str = Field(description="Unique task name: lowercase letters, digits and '-'.",
                      examples=["my-finetuning-task"])
    description: str = ""
    owner_id: int | None = Field(default=None, description="Creating user's id.")
    base_model: str | None = Field(default=None, description="Model directory, .gguf file, hub id or 'bundled'.")
    dataset_path: str | None = Field(default=None, description="A .json/.jsonl file, a folder with train/valid/test "
                                                               "files, or dataset_info.json names (comma-separated).")
    output_path: str | None = Field(default=None, description="Where the fine-tuned model goes (inside the allowed "
                                                              "folders). Default: HOME/outputs/<name>.")
    training_args: dict[str, Any] = Field(
        default_factory=dict, description="LLaMA-Factory argument names (see GET /finetuning/getParameters); "
        "num_train_epochs, per_device_train_batch_size, gradient_accumulation_steps and learning_rate accept 'auto'.")
    gpu_config: dict[str, Any] = Field(default_factory=dict, description='{"cuda_visible_devices": "0,1"} or '
                                       '{"gpu_count": 2}; "memory_optimization": true turns on gradient checkpointing.')
    experiment_id: int | None = Field(default=None, description="Add the task to this experiment.")
    datasets: list[dict[str, Any]] | None = Field(
        default=None, description='Managed datasets with mixing ratios, e.g. [{"name": "med-qa", "version": 2, '
        '"ratio": 0.8}, {"name": "general", "ratio": 0.2}] (instead of datasetPath).')


class IdBody(Body):
    """A JSON body {"id": N}, as the operations on one task or deployment take it."""

    id: int


class TaskIdBody(IdBody):
    pass


def required_id(query_id: int | None, body: IdBody | None) -> int:
    """`?id=N` or a JSON body {"id": N} (the query wins when both are given)."""
    if query_id is not None:
        return query_id
    if body is None:
        raise InvalidInput.of([ConfigProblem("id", "is required: ?id=N or a JSON body {\"id\": N}")])
    return body.id


class CopyTaskBody(Body):
    id: int
    name: str | None = Field(default=None, description="Name of the copy; default '<name>-copy'.")
    training_args: dict[str, Any] = Field(default_factory=dict, description="Arguments to change in the copy.")


class CreateExperimentBody(Body):
    name: str
    description: str = ""
    owner_id: int | None = None
    base_model: str
    dataset_path: str
    template: str = "default"
    finetuning_type: str = "lora"
    stage: str = "sft"
