"""Task statuses and the naming rule shared by the service, the API, the CLI and the console."""

from __future__ import annotations

import re
from enum import StrEnum


class TaskStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    STOPPING = "stopping"
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"


ACTIVE_STATUSES = frozenset({TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.STOPPING})
FINAL_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.STOPPED})

# Lowercase letters, digits and "-", starting and ending with a letter or digit. "_" is accepted as well
# because common API examples name a task "my_finetuning_task".
NAME_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?$")
NAME_MAX = 63


def name_problem(value: object) -> str | None:
    """Why a task / experiment name is not allowed, or None when it is."""
    if not isinstance(value, str) or not value:
        return "is required: lowercase letters, digits and '-' (e.g. 'qwen-medical-lora-1')"
    if len(value) > NAME_MAX:
        return f"is {len(value)} characters long; at most {NAME_MAX} are allowed"
    if not NAME_PATTERN.fullmatch(value):  # fullmatch: '$' alone would let a trailing newline through
        bad = sorted({c for c in value if not re.match(r"[a-z0-9_-]", c)})
        why = f"contains {', '.join(repr(c) for c in bad)}" if bad else "must start and end with a letter or digit"
        return f"{why}: use lowercase letters, digits and '-', starting and ending with a letter or digit"
    return None


# A model fine-tuned through the OpenAI-compatible API is named as OpenAI names it: ft:<base>:<org>:<suffix>:<job>
# and ft:…:ckpt-step-<N> for a checkpoint (the org and the suffix may be empty). Models are its only user.
FINE_TUNED_NAME_PATTERN = re.compile(r"^ft:[a-z0-9._-]+:[a-z0-9._-]*:[a-z0-9._-]*:[a-z0-9]+(?::ckpt-step-\d+)?$")


def model_name_problem(value: object) -> str | None:
    """Why a registered model's name is not allowed: a native name (name_problem's rule), or an OpenAI-style
    fine-tuned model name."""
    if isinstance(value, str) and value.startswith("ft:"):
        if len(value) > NAME_MAX:
            return f"is {len(value)} characters long; at most {NAME_MAX} are allowed"
        if not FINE_TUNED_NAME_PATTERN.fullmatch(value):
            return ("is not a fine-tuned model name like 'ft:<base>:<org>:<suffix>:<job>' (lowercase letters, digits, "
                    "'.', '_' and '-' between the colons; ':ckpt-step-<N>' for a checkpoint)")
        return None
    return name_problem(value)
