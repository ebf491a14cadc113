"""Which request field a problem of the underlying task is about: the planner names tuneforge's fields (baseModel,
datasetPath, trainingArgs.per_device_train_batch_size, …); an OpenAI client gave model, training_file,
method.<type>.hyperparameters.batch_size, …, and is told in those terms."""

from __future__ import annotations

import re

from tuneforge.schemas import ConfigProblem
from tuneforge.service.errors import DoesNotFit, InvalidInput, ServiceError
from tuneforge.service.openai.errors import InvalidRequest

# tuneforge's field → the hyperparameter (under method.<type>.hyperparameters) that sets it
HYPERPARAMETER_OF = {"per_device_train_batch_size": "batch_size", "gradient_accumulation_steps": "batch_size",
                     "learning_rate": "learning_rate_multiplier", "num_train_epochs": "n_epochs",
                     "pref_beta": "beta", "num_generations": "compute_multiplier", "eval_steps": "eval_interval"}
REQUEST_FIELD_OF = {"baseModel": "model", "model_name_or_path": "model", "adapter_name_or_path": "model",
                    "template": "model", "datasetPath": "training_file", "dataset": "training_file",
                    "dataset_dir": "training_file", "eval_dataset": "validation_file", "report_to": "integrations",
                    "run_name": "integrations", "seed": "seed"}


def request_field(field: str, hyperparameters: str) -> str:
    """`hyperparameters`: where the request's hyperparameters are (method.dpo.hyperparameters, …)."""
    name = field.removeprefix("trainingArgs.")
    key = re.split(r"[.\[]", name, maxsplit=1)[0]
    if key in HYPERPARAMETER_OF:
        return f"{hyperparameters}.{HYPERPARAMETER_OF[key]}"
    if key == "rewards":  # rewards[0].grader.<path> is in the request's one grader
        return "method.reinforcement.grader" + name.partition(".grader")[2]
    return REQUEST_FIELD_OF.get(key, field)


def in_request_terms(error: ServiceError, hyperparameters: str) -> ServiceError:
    """The task's refusal, its fields renamed to the request's."""
    problems = [ConfigProblem(request_field(str(d.get("field", "")), hyperparameters), str(d.get("message", "")))
                for d in error.details]
    if isinstance(error, InvalidInput) and problems:
        return InvalidRequest.of(problems)
    if isinstance(error, DoesNotFit):
        return InvalidRequest.of([ConfigProblem(f"{hyperparameters}.batch_size", f"{error.message}: the model does not "
                                              "fit this host's memory at this batch size; give a smaller batch_size "
                                              "or a smaller model")])
    return error
