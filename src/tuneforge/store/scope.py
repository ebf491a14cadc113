"""Who is acting, and what they may see: every row of an owned table belongs to a user (or, with no owner, to the
platform: the bundled model, on-demand deployments). The API sets the acting user for each request; one SQLAlchemy
hook then adds "owner is me, or nobody" to every ORM query a member's request makes, and another refuses a member's
change to a row that is not theirs. Services write their queries once, for everyone, and cannot forget the filter
(SQLAlchemy's documented multi-tenant pattern: `do_orm_execute` with `with_loader_criteria`).

Admins and the platform itself (scheduler, ingestion, the CLI's direct commands, tests that call services) act with
no filter."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, or_
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria


@dataclass(frozen=True)
class Actor:
    """The user a request acts for."""

    user_id: int
    name: str
    is_admin: bool


class NotPermitted(Exception):
    """A member tried to change a row that belongs to the platform (or to someone else)."""


# execution_options of a query that must see every user's rows, e.g. "is another task writing to this folder?"
ALL_OWNERS = {"all_owners": True}
_acting: ContextVar[Actor | None] = ContextVar("tuneforge_actor", default=None)
OWNED: list[type[Any]] = []  # the tables with an owner_id, registered by `owned`


def owned(table: type[Any]) -> type[Any]:
    """Class decorator: this table's rows have an owner and are filtered for members."""
    OWNED.append(table)
    return table


def current_actor() -> Actor | None:
    return _acting.get()


def owner_of_new_row(given: int | None) -> int | None:
    """The owner a new row will get: the one given, else the acting user (None: the platform's)."""
    actor = _acting.get()
    return given if given is not None else (actor.user_id if actor else None)


@contextmanager
def acting_as(actor: Actor | None) -> Iterator[None]:
    """Run the block as `actor` (None: as the platform, unfiltered)."""
    token = _acting.set(actor)
    try:
        yield
    finally:
        _acting.reset(token)


def as_platform() -> Any:
    """Run the block as the platform: work a request starts on everyone's behalf (a shared on-demand model)."""
    return acting_as(None)


def _member() -> Actor | None:
    actor = _acting.get()
    return actor if actor is not None and not actor.is_admin else None


@event.listens_for(Session, "do_orm_execute")
def _only_own_rows(state: ORMExecuteState) -> None:
    member = _member()
    if member is None or state.is_column_load or state.is_relationship_load:
        return
    if state.execution_options.get("all_owners"):
        return
    if not (state.is_select or state.is_update or state.is_delete):
        return
    user_id = member.user_id
    state.statement = state.statement.options(*(
        with_loader_criteria(table, lambda t: or_(t.owner_id == user_id, t.owner_id.is_(None)),
                             include_aliases=True)
        for table in OWNED))


@event.listens_for(Session, "before_flush")
def _stamp_and_guard(session: Session, _context: Any, _instances: Any) -> None:
    """New rows get the acting user as owner; a member may not create a row for someone else, nor change or delete a
    row that is not theirs (the platform's shared rows are visible to them, read-only)."""
    actor = _acting.get()
    if actor is None:
        return
    for row in session.new:
        if type(row) in OWNED:
            if row.owner_id is None:
                row.owner_id = actor.user_id
            elif row.owner_id != actor.user_id and not actor.is_admin:
                raise NotPermitted(f"ownerId {row.owner_id}: a member creates things for themselves only")
    if actor.is_admin:
        return
    changed = [row for row in session.dirty if session.is_modified(row)]
    for row in [*changed, *session.deleted]:
        if type(row) in OWNED and row.owner_id != actor.user_id:
            raise NotPermitted("this belongs to the platform: only an admin may change or delete it")
