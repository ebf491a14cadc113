"""A job's `integrations`: recorded on the job as given, and honoured or refused — never accepted and ignored.

W&B is the one integration OpenAI has. A tuneforge run reports to W&B through `report_to: wandb` (the Trainer's own
WandbCallback) and names its run by `run_name`, which the integration's `name` sets. The project, entity and tags
are not settings of a run: the W&B client reads them from the worker's environment (WANDB_PROJECT, WANDB_ENTITY),
which is the server's. So an integration is honoured only when it asks for what every run already gets — the
server's project and entity, no tags — and refused otherwise, saying why; the planner then refuses `report_to: wandb`
on a host without the wandb package."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from tuneforge.schemas import ConfigProblem
from tuneforge.service.openai.job_requests import Integration


def integration_arguments(integrations: list[Integration] | None, run_name: str,
                          environment: Mapping[str, str] | None = None) -> tuple[dict[str, Any], list[ConfigProblem]]:
    """The training arguments that honour `integrations`, and the problems of those that cannot be honoured."""
    if not integrations:
        return {}, []
    env = os.environ if environment is None else environment
    problems: list[ConfigProblem] = []
    for index, integration in enumerate(integrations):
        problems += _wandb_problems(integration, f"integrations[{index}].wandb", env, first=index == 0)
    wandb = integrations[0].wandb
    return {"report_to": ["wandb"], "run_name": wandb.name or run_name}, problems


def _wandb_problems(integration: Integration, where: str, env: Mapping[str, str], first: bool) -> list[ConfigProblem]:
    if not first:
        return [ConfigProblem(where, "a run reports to one W&B project; give one wandb integration")]
    wandb, problems = integration.wandb, []
    project = env.get("WANDB_PROJECT")
    if wandb.project != project:
        where_to = f"the server's WANDB_PROJECT, {project!r}" if project else \
            "W&B's default project (the server sets no WANDB_PROJECT)"
        problems.append(ConfigProblem(f"{where}.project", (
            f"{wandb.project!r} cannot be honoured: tuneforge's runs report to {where_to}, set in the server's "
            "environment, not per job; give that project, or leave out the integration")))
    entity = env.get("WANDB_ENTITY")
    if wandb.entity is not None and wandb.entity != entity:
        problems.append(ConfigProblem(f"{where}.entity", (
            f"{wandb.entity!r} cannot be honoured: the W&B entity is the server's WANDB_ENTITY "
            f"({entity!r}), not a setting of a run")))
    if wandb.tags:
        problems.append(ConfigProblem(f"{where}.tags", "cannot be honoured: tuneforge's runs set no W&B tags; "
                                                       "leave them out"))
    return problems
