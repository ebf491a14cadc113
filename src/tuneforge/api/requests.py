"""Request bodies, in camelCase; training-argument keys inside trainingArgs stay snake_case."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel

from tuneforge.api.limits import MAX_ID, MAX_INT, current_limits, depth, path_problem
from tuneforge.schemas import ConfigProblem
from tuneforge.schemas.capabilities import PATH_FIELDS as TRAINING_PATH_FIELDS
from tuneforge.schemas.capabilities import PATH_LIST_FIELDS
from tuneforge.service.errors import InvalidInput

# Body fields that name a file, folder or model on the server: each must be a path the OS could open.
PATH_FIELDS = frozenset({"base_model", "dataset_path", "output_path", "path", "model_path", "adapter_path", "source",
                         "dataset", "baseline", "output_dir", "quantization_dataset"})
MAPPING_FIELDS = frozenset({"training_args", "gpu_config", "overrides", "options", "datasets"})


class Body(BaseModel):
    """Every JSON request body: camelCase, unknown fields refused, and each value bounded (limits.py) so that no
    value reaches the database or the file system that they would refuse with an exception."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _bounded(cls, value: Any, info: ValidationInfo) -> Any:
        name = info.field_name or ""
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            bound = MAX_ID if name == "id" or name.endswith("_id") else MAX_INT
            if not -bound - 1 <= value <= bound:
                raise ValueError(f"is out of range (at most {bound})")
        elif isinstance(value, str):
            _check_text(name, value)
        elif isinstance(value, dict | list) and name in MAPPING_FIELDS:
            _check_mapping(value)
        return value


def _check_text(name: str, value: str) -> None:
    if "\x00" in value:
        raise ValueError("must not contain NUL bytes")
    if name == "description" and len(value) > current_limits().description_chars:
        raise ValueError(f"is longer than {current_limits().description_chars} characters")
    if name in PATH_FIELDS and (why := path_problem(value)):
        raise ValueError(why)


def _check_mapping(value: dict[str, Any] | list[Any]) -> None:
    limits = current_limits()
    if len(value) > limits.training_args:
        raise ValueError(f"has {len(value)} keys; at most {limits.training_args}")
    if depth(value) > limits.json_depth:
        raise ValueError(f"nests deeper than {limits.json_depth} levels")


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


def check_training_args(args: dict[str, Any]) -> None:
    """Path-valued training arguments (the schema says which) must be paths the OS could open, and no text may hold
    a NUL byte: refused here naming trainingArgs.<key>, before the planner hands them to the file system."""
    problems = []
    for key, value in args.items():
        if not isinstance(value, str):
            continue
        parts = value.split(",") if key in PATH_LIST_FIELDS or key == "adapter_name_or_path" else [value]
        if key in TRAINING_PATH_FIELDS or key in PATH_LIST_FIELDS:
            why = next((w for part in parts if (w := path_problem(part.strip()))), None)
        else:
            why = "must not contain NUL bytes" if "\x00" in value else None
        if why:
            problems.append(ConfigProblem(f"trainingArgs.{key}", why))
    if problems:
        raise InvalidInput.of(problems)


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
    # experiments.base_model / dataset are VARCHAR(1024): PostgreSQL refuses longer values with an exception
    base_model: str = Field(max_length=1024)
    dataset_path: str = Field(max_length=1024)
    template: str = "default"
    finetuning_type: str = "lora"
    stage: str = "sft"
