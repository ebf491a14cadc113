"""A GRPO / PPO run's `rewards` turned into graders: inline objects, or grader files next to the config.

Stored graders (by name) are inlined by the server before a run is planned, so the worker stays a pure function of
its spec; here a string is always a file. The planner calls `reward_graders` to refuse a missing or broken grader
before any compute, the worker to build its reward functions — the same code, so both read the same grader.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tuneforge.graders.problems import grader_problems
from tuneforge.schemas.graders import GRADER_ADAPTER, Grader

MAX_GRADER_FILE_BYTES = 256 * 1024


@dataclass(frozen=True)
class RewardGrader:
    name: str  # unique within the run: the metric is rewards/<name>/mean
    grader: Grader
    weight: float


class RewardSpecError(ValueError):
    """Problems of the rewards, each as (field path, reason)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{field}: {reason}" for field, reason in problems))


def reward_graders(rewards: Sequence[Any] | None, config_dir: Path | None) -> list[RewardGrader]:
    """Every reward's grader, validated and runnable here, or RewardSpecError with every problem."""
    problems: list[tuple[str, str]] = []
    graders: list[RewardGrader] = []
    used: set[str] = set()
    for index, reward in enumerate(rewards or []):
        where = f"rewards[{index}].grader"
        try:
            grader = _grader(reward.grader, config_dir)
        except ValueError as error:
            problems.append((where, str(error)))
            continue
        problems += [(f"{where}.{field}" if field else where, reason) for field, reason in grader_problems(grader)]
        graders.append(RewardGrader(_unique(grader.name, used), grader, float(reward.weight)))
    if problems:
        raise RewardSpecError(problems)
    return graders


def _grader(value: str | dict[str, Any], config_dir: Path | None) -> Grader:
    if isinstance(value, dict):
        return _validated(value)
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = (config_dir or Path.cwd()) / path
    if not path.is_file():
        raise ValueError(f"no grader file at {path}; give a .json / .yaml grader file, an inline grader object, "
                         "or (through the server) the name of a stored grader")
    if path.stat().st_size > MAX_GRADER_FILE_BYTES:
        raise ValueError(f"{path} is over {MAX_GRADER_FILE_BYTES // 1024} KiB; a grader file holds one grader")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ValueError(f"{path} is not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {error}") \
            from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold one grader object")
    return _validated(data)


def _validated(data: dict[str, Any]) -> Grader:
    try:
        return GRADER_ADAPTER.validate_python(data)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise ValueError(f"not a valid grader ({field}: {first['msg']})") from None


def _unique(name: str, used: set[str]) -> str:
    candidate, number = name, 2
    while candidate in used:
        candidate, number = f"{name}_{number}", number + 1
    used.add(candidate)
    return candidate
