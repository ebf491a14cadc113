"""Per-user scoping in the store: a member's queries see their own rows and the platform's, never another user's;
a member cannot change the platform's rows; admins and the platform see everything."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, update

from tuneforge.store import Database, RegisteredModel, Task
from tuneforge.store.scope import Actor, NotPermitted, acting_as

ALICE = Actor(1, "alice", is_admin=False)
BOB = Actor(2, "bob", is_admin=False)
ADMIN = Actor(3, "root", is_admin=True)


def _task(name: str) -> Task:
    return Task(name=name, base_model="m", dataset="d", output_path="/o", stage="sft", finetuning_type="lora",
                training_args={})


@pytest.fixture()
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'scope.db'}")
    database.upgrade()
    with acting_as(ALICE), database.session() as session:
        session.add(_task("alices"))
    with acting_as(BOB), database.session() as session:
        session.add(_task("bobs"))
    with database.session() as session:  # the platform: a shared model
        session.add(RegisteredModel(name="shared", kind="base", source="bundled"))
    return database


def test_new_rows_belong_to_who_made_them(db: Database) -> None:
    with db.session() as session:
        owners = {name: owner for name, owner in session.execute(select(Task.name, Task.owner_id))}
    assert owners == {"alices": 1, "bobs": 2}


def test_a_member_sees_only_their_rows_in_every_kind_of_query(db: Database) -> None:
    with acting_as(ALICE), db.session() as session:
        assert session.scalars(select(Task.name)).all() == ["alices"]
        assert session.scalar(select(func.count()).select_from(Task)) == 1
        bobs_id = session.execute(select(Task.id).where(Task.name == "bobs")).scalar()
        assert bobs_id is None
    with db.session() as session:
        bobs_id = session.scalar(select(Task.id).where(Task.name == "bobs"))
    with acting_as(ALICE), db.session() as session:
        assert session.get(Task, bobs_id) is None
        session.execute(update(Task).values(description="hacked"))
        session.execute(delete(Task).where(Task.id == bobs_id))
    with db.session() as session:
        bobs = session.get(Task, bobs_id)
        assert bobs is not None and bobs.description == ""


def test_the_platforms_rows_are_shared_and_read_only_for_members(db: Database) -> None:
    with acting_as(BOB), db.session() as session:
        model = session.scalar(select(RegisteredModel).where(RegisteredModel.name == "shared"))
        assert model is not None
    with pytest.raises(NotPermitted), acting_as(BOB), db.session() as session:
        model = session.scalar(select(RegisteredModel).where(RegisteredModel.name == "shared"))
        session.delete(model)
    with pytest.raises(NotPermitted), acting_as(BOB), db.session() as session:
        model = session.scalar(select(RegisteredModel).where(RegisteredModel.name == "shared"))
        model.description = "mine now"
    with acting_as(ADMIN), db.session() as session:
        model = session.scalar(select(RegisteredModel).where(RegisteredModel.name == "shared"))
        model.description = "fine"


def test_a_member_cannot_make_rows_for_someone_else(db: Database) -> None:
    with pytest.raises(NotPermitted), acting_as(ALICE), db.session() as session:
        task = _task("planted")
        task.owner_id = BOB.user_id
        session.add(task)


def test_admins_see_everything(db: Database) -> None:
    with acting_as(ADMIN), db.session() as session:
        assert sorted(session.scalars(select(Task.name))) == ["alices", "bobs"]
