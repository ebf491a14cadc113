"""Ids and model names in OpenAI's style: ftjob-…, ftckpt-…, ftevent-… and the fine-tuned model's name,
ft:<base>:<org>:<suffix>:<job> (ft:…:ckpt-step-<N> for a checkpoint).

A registered model's name is at most 63 characters (schemas.tasks.NAME_MAX: the models.name column), so a long base,
org or suffix is shortened in the name (the longest part first); the job keeps the suffix exactly as given."""

from __future__ import annotations

import re
import secrets
import string
from pathlib import PurePosixPath

from tuneforge.schemas.tasks import NAME_MAX

JOB_PREFIX = "ftjob-"
ID_ALPHABET = string.ascii_lowercase + string.digits  # lowercase: the job id is also its task's name
ID_CHARS = 24
SHORT_CHARS = 8  # of the job id, in the model's name (OpenAI's names end in 8 characters of the job)
UNSAFE = re.compile(r"[^a-z0-9._-]+")


def new_job_id() -> str:
    return JOB_PREFIX + "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_CHARS))


def job_key(job_id: str) -> str:
    """The random part of a job id (the ids of its events and checkpoints carry it)."""
    return job_id.removeprefix(JOB_PREFIX)


def checkpoint_id(job_id: str, step: int) -> str:
    return f"ftckpt-{job_key(job_id)}-{step}"


def event_id(job_id: str, kind: str, number: int | str) -> str:
    return f"ftevent-{job_key(job_id)}-{kind}{number}"


def base_name(model: str) -> str:
    """What a model is called in a fine-tuned model's name: a registered name as it is; a folder, a .gguf file or
    a hub id by its last part; a fine-tuned model by its own base (as OpenAI names a model trained further)."""
    if model.startswith("ft:"):
        return name_part(model.split(":")[1]) or "model"
    last = PurePosixPath(model.replace("\\", "/").rstrip("/")).name or model
    return name_part(last.removesuffix(".gguf")) or "model"


def name_part(text: str) -> str:
    """Lowercase letters, digits, '.', '_' and '-' (anything else becomes '-')."""
    return UNSAFE.sub("-", text.lower()).strip("-")


def fine_tuned_model_name(base: str, org: str, suffix: str | None, job_id: str, step: int | None = None) -> str:
    tail = f":{job_key(job_id)[:SHORT_CHARS]}" + (f":ckpt-step-{step}" if step is not None else "")
    parts = [name_part(base) or "model", name_part(org), name_part(suffix or "")]
    budget = NAME_MAX - len("ft:") - len(tail) - 2  # two colons between the three parts
    while sum(map(len, parts)) > budget:
        longest = max(range(3), key=lambda i: len(parts[i]))
        parts[longest] = parts[longest][:-1]
    return f"ft:{':'.join(parts)}{tail}"
