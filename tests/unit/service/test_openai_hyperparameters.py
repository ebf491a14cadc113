""""auto" in an OpenAI fine-tuning job resolves the way OpenAI documents it, into the training arguments of a LoRA
task; what tuneforge cannot honour is refused naming the request's field; fine-tuned model names fit the registry."""

from __future__ import annotations

import pytest

from tuneforge.schemas.tasks import model_name_problem, name_problem
from tuneforge.service.openai.hyperparameters import (
    BASE_LEARNING_RATE,
    auto_batch_size,
    auto_epochs,
    micro_batches,
    resolve_method,
)
from tuneforge.service.openai.integrations import integration_arguments
from tuneforge.service.openai.job_requests import Integration, JobCreateRequest
from tuneforge.service.openai.job_requests_map import request_field
from tuneforge.service.openai.naming import base_name, fine_tuned_model_name


def _request(**fields: object) -> JobCreateRequest:
    return JobCreateRequest.model_validate({"model": "tiny", "training_file": "file-x", **fields})


@pytest.mark.parametrize(("examples", "epochs"), [(3, 25), (10, 10), (24, 4), (34, 3), (1000, 3), (10_000, 2),
                                                  (30_000, 1)])
def test_auto_epochs_follow_openais_rule(examples, epochs):
    """3 epochs; at least ~100 examples seen (at most 25 epochs); at most ~25,000 (at least 1 epoch)."""
    assert auto_epochs(examples) == epochs


@pytest.mark.parametrize(("examples", "batch"), [(8, 1), (999, 2), (5_000, 10), (1_000_000, 256)])
def test_auto_batch_size_is_a_fifth_of_a_percent_capped_at_256(examples, batch):
    assert auto_batch_size(examples) == batch


def test_a_batch_is_split_into_micro_batches_that_multiply_back():
    assert micro_batches(24, 1) == {"per_device_train_batch_size": 8, "gradient_accumulation_steps": 3}
    assert micro_batches(7, 1) == {"per_device_train_batch_size": 7, "gradient_accumulation_steps": 1}
    assert micro_batches(11, 1) == {"per_device_train_batch_size": 1, "gradient_accumulation_steps": 11}
    # reinforcement: each example is num_generations answers, and a forward pass holds whole groups
    assert micro_batches(4, 4) == {"per_device_train_batch_size": 8, "gradient_accumulation_steps": 2}
    assert micro_batches(3, 16) == {"per_device_train_batch_size": 16, "gradient_accumulation_steps": 3}


def test_supervised_auto_is_reported_resolved_and_trains_at_the_lora_rate():
    resolved = resolve_method(_request(), examples=24, has_validation=False)
    assert resolved.problems == []
    assert resolved.hyperparameters == {"n_epochs": 4, "batch_size": 1, "learning_rate_multiplier": 1.0}
    assert resolved.training_args == {"stage": "sft", "finetuning_type": "lora", "num_train_epochs": 4,
                                      "learning_rate": 1e-4, "per_device_train_batch_size": 1,
                                      "gradient_accumulation_steps": 1}


def test_the_deprecated_hyperparameters_and_a_multiplier_set_the_rate():
    resolved = resolve_method(_request(hyperparameters={"learning_rate_multiplier": 2, "batch_size": 16}), 500,
                              has_validation=True)
    assert resolved.training_args["learning_rate"] == pytest.approx(2e-4)
    assert resolved.training_args["eval_strategy"] == "epoch"  # the validation file scored as training goes
    assert (resolved.training_args["per_device_train_batch_size"],
            resolved.training_args["gradient_accumulation_steps"]) == (8, 2)


def test_dpo_and_reinforcement_start_from_a_tenth_of_the_sft_rate():
    assert BASE_LEARNING_RATE == {"supervised": 1e-4, "dpo": 1e-5, "reinforcement": 1e-5}
    dpo = resolve_method(_request(method={"type": "dpo"}), 100, has_validation=False)
    assert dpo.hyperparameters["beta"] == 0.1 and dpo.training_args["pref_beta"] == 0.1
    assert dpo.training_args["stage"] == "dpo" and dpo.training_args["learning_rate"] == pytest.approx(1e-5)


def test_reinforcement_auto_samples_four_answers_and_evaluates_once_an_epoch():
    grader = {"type": "string_check", "name": "g", "input": "a", "reference": "a", "operation": "eq"}
    resolved = resolve_method(_request(method={"type": "reinforcement", "reinforcement": {
        "grader": grader, "hyperparameters": {"batch_size": 4, "compute_multiplier": 2}}}), 40, has_validation=True)
    assert resolved.problems == []
    assert resolved.training_args["num_generations"] == 8 and resolved.hyperparameters["eval_samples"] == 8
    assert resolved.training_args["per_device_train_batch_size"] == 8  # one prompt's 8 answers a forward pass
    assert resolved.hyperparameters["eval_interval"] == 10 == resolved.training_args["eval_steps"]  # 40 / 4


@pytest.mark.parametrize(("fields", "field"), [
    ({"method": {"type": "reinforcement", "reinforcement": {"grader": {}, "hyperparameters": {
        "reasoning_effort": "low"}}}}, "method.reinforcement.hyperparameters.reasoning_effort"),
    ({"method": {"type": "reinforcement", "reinforcement": {"grader": {}, "hyperparameters": {"eval_samples": 3}}}},
     "method.reinforcement.hyperparameters.eval_samples"),
    ({"method": {"type": "reinforcement", "reinforcement": {"grader": {}, "hyperparameters": {"eval_interval": 3}}}},
     "method.reinforcement.hyperparameters.eval_interval"),
    ({"method": {"type": "dpo"}, "hyperparameters": {"n_epochs": 2}}, "hyperparameters"),
    ({"method": {"type": "dpo", "supervised": {}}}, "method.supervised"),
])
def test_what_cannot_be_honoured_names_its_field(fields, field):
    problems = resolve_method(_request(**fields), 10, has_validation=False).problems
    assert [p.field for p in problems] == [field]


def test_a_wandb_integration_is_honoured_only_as_every_run_reports():
    wandb = Integration.model_validate({"type": "wandb", "wandb": {"project": "p", "name": "run-1"}})
    args, problems = integration_arguments([wandb], "ftjob-x", environment={"WANDB_PROJECT": "p"})
    assert args == {"report_to": ["wandb"], "run_name": "run-1"} and problems == []
    _, elsewhere = integration_arguments([wandb], "ftjob-x", environment={})
    assert [p.field for p in elsewhere] == ["integrations[0].wandb.project"]
    tagged = Integration.model_validate({"type": "wandb", "wandb": {"project": "p", "tags": ["a"]}})
    _, tags = integration_arguments([tagged], "ftjob-x", environment={"WANDB_PROJECT": "p"})
    assert [p.field for p in tags] == ["integrations[0].wandb.tags"]


def test_task_problems_are_named_in_the_requests_terms():
    where = "method.dpo.hyperparameters"
    assert request_field("trainingArgs.per_device_train_batch_size", where) == f"{where}.batch_size"
    assert request_field("baseModel", where) == "model"
    assert request_field("datasetPath", where) == "training_file"
    assert request_field("trainingArgs.rewards[0].grader.input", where) == "method.reinforcement.grader.input"
    assert request_field("trainingArgs.cutoff_len", where) == "trainingArgs.cutoff_len"


def test_fine_tuned_model_names_fit_the_registry_and_native_names_keep_their_rule():
    short = fine_tuned_model_name("tiny", "tuneforge", "qa", "ftjob-abcdefgh0123456789abcdef")
    assert short == "ft:tiny:tuneforge:qa:abcdefgh" and model_name_problem(short) is None
    long = fine_tuned_model_name("b" * 60, "team-x", "S" * 64, "ftjob-abcdefgh0123456789abcdef", step=1200)
    assert len(long) <= 63 and long.endswith(":abcdefgh:ckpt-step-1200") and model_name_problem(long) is None
    assert model_name_problem("ft:Bad Name") is not None and model_name_problem("qwen-lora-1") is None
    assert name_problem("ft:tiny:tuneforge:qa:abcdefgh") is not None  # tasks, datasets, … keep the native rule


def test_a_models_base_name_is_its_last_part_or_a_fine_tuned_models_own_base():
    assert base_name("tiny") == "tiny" and base_name("/models/Qwen2.5-0.5B-Instruct/") == "qwen2.5-0.5b-instruct"
    assert base_name("HuggingFaceTB/SmolLM2-135M.gguf") == "smollm2-135m"
    assert base_name("ft:tiny:tuneforge:qa:abcdefgh") == "tiny"
