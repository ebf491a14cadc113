"""What a use-case refuses, and why. The API maps each kind to an HTTP status and the error body."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from tuneforge.schemas import ConfigProblem

Row = TypeVar("Row")


class ServiceError(Exception):
    code = "error"
    status = 400

    def __init__(self, message: str, details: Sequence[ConfigProblem | dict[str, Any]] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.details = [d if isinstance(d, dict) else {"field": d.field, "message": d.message} for d in details]


class InvalidInput(ServiceError):
    """Bad input: each detail names the field (API name, e.g. trainingArgs.lora_rank) and what to do."""

    code = "invalid_input"
    status = 422

    @classmethod
    def of(cls, problems: Sequence[ConfigProblem]) -> InvalidInput:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return cls(f"{first.field}: {first.message}{more}", problems)


class NotFound(ServiceError):
    code = "not_found"
    status = 404


class Conflict(ServiceError):
    """The request is fine but the resource's state forbids it (stop a completed task, a taken name)."""

    code = "conflict"
    status = 409


class Forbidden(ServiceError):
    """The caller may not do this at all (a member managing users, changing the platform's shared rows)."""

    code = "forbidden"
    status = 403


class DoesNotFit(ServiceError):
    """The estimate says the task cannot fit the devices it asked for; details carry the numbers."""

    code = "does_not_fit"
    status = 422


def get_or_not_found(session: Session, table: type[Row], row_id: object, noun: str, field: str = "id") -> Row:
    """The row with this id, or NotFound naming the request field ("task 7 does not exist")."""
    row = session.get(table, row_id)
    if row is None:
        raise NotFound(f"{noun} {row_id} does not exist", [ConfigProblem(field, f"no such {noun}")])
    return row


MAX_PAGE = 1_000_000  # beyond any real list; larger numbers overflow the database's OFFSET
MAX_PAGE_SIZE = 200


def paging_problems(page: int, page_size: int) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    if not 1 <= page <= MAX_PAGE:
        problems.append(ConfigProblem("page", f"must be between 1 and {MAX_PAGE}"))
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        problems.append(ConfigProblem("pageSize", f"must be between 1 and {MAX_PAGE_SIZE}"))
    return problems


def escape_like(text: str) -> str:
    """`text` as a literal inside a LIKE pattern (escape character backslash): `%` and `_` match only themselves."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
