"""Users (admin | member, with limits) and API keys. A key is `tf-` plus 256 random bits, shown once; the table keeps
its SHA-256: a key this long cannot be guessed from its hash, so a slow password hash (argon2, bcrypt) would only
slow down every request. Revoking takes effect on the next request: keys are looked up each time, not cached."""

from __future__ import annotations

import builtins  # in the service's signatures `list` names its list method: the type is builtins.list
import hashlib
import os
import secrets
import time
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from tuneforge.schemas import ConfigProblem
from tuneforge.schemas.tasks import name_problem
from tuneforge.service.errors import Conflict, Forbidden, InvalidInput, NotFound
from tuneforge.settings import Settings
from tuneforge.store import ApiKey, Database, RegisteredModel, User
from tuneforge.store.scope import OWNED, Actor, current_actor

ROLES = ("admin", "member")
KEY_PREFIX = "tf-"
LOCAL_ADMIN = "admin"
LAST_USED_EVERY_S = 60.0  # last_used_at is written at most this often per key: no write on every request


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class UserService:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._last_used: dict[int, float] = {}

    # -- start-up ------------------------------------------------------------------------------------------------
    def ensure_local_admin(self) -> None:
        """On a database with no user: create the local admin and its key, written to HOME/local-admin.key for the
        CLI and the console on this machine. What existed before users did (tasks, datasets, …) becomes theirs."""
        with self.db.session() as session:
            if session.scalar(select(func.count()).select_from(User)):
                return
            admin = User(name=LOCAL_ADMIN, role="admin", created_at=time.time())
            session.add(admin)
            session.flush()
            secret = self._add_key(session, admin.id, "local")
            for table in OWNED:
                adopt = update(table).where(table.owner_id.is_(None)).values(owner_id=admin.id)
                if table is RegisteredModel:  # the bundled model stays the platform's, shared with everyone
                    adopt = adopt.where(RegisteredModel.source != "bundled")
                session.execute(adopt)
        self.write_local_key(secret)

    def write_local_key(self, secret: str) -> None:
        path = self.settings.local_key_file
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(secret + "\n")

    def local_admin_actor(self) -> Actor:
        """Who a request acts as when auth is off: the first admin."""
        with self.db.session() as session:
            admin = session.scalar(select(User).where(User.role == "admin").order_by(User.id))
            if admin is None:
                raise RuntimeError("no admin user: the database was not set up (ensure_local_admin)")
            return Actor(admin.id, admin.name, is_admin=True)

    # -- authentication ----------------------------------------------------------------------------------------
    def authenticate(self, secret: str) -> Actor | None:
        if not secret.startswith(KEY_PREFIX) or len(secret) > 200:
            return None
        with self.db.session() as session:
            row = session.execute(select(ApiKey, User).join(User, User.id == ApiKey.user_id).where(
                ApiKey.secret_hash == hash_key(secret), ApiKey.revoked_at.is_(None),
                User.disabled.is_(False))).first()
            if row is None:
                return None
            key, user = row
            now = time.time()
            if now - self._last_used.get(key.id, 0.0) > LAST_USED_EVERY_S:
                self._last_used[key.id] = now
                key.last_used_at = now
            return Actor(user.id, user.name, is_admin=user.role == "admin")

    # -- users ---------------------------------------------------------------------------------------------------
    def me(self) -> dict[str, Any]:
        actor = _acting()
        with self.db.session() as session:
            return user_view(_user(session, actor.user_id))

    def create_user(self, name: str, role: str = "member", max_running_tasks: int | None = None,
                    max_gpus: int | None = None) -> dict[str, Any]:
        _require_admin()
        problems = _user_problems(name, role, max_running_tasks, max_gpus)
        if problems:
            raise InvalidInput.of(problems)
        with self.db.session() as session:
            if session.scalar(select(User.id).where(User.name == name)) is not None:
                raise Conflict(f"name: a user named {name!r} exists", [ConfigProblem("name", "exists")])
            user = User(name=name, role=role, max_running_tasks=max_running_tasks, max_gpus=max_gpus,
                        created_at=time.time())
            session.add(user)
            session.flush()
            return user_view(user)

    def list(self) -> dict[str, Any]:
        actor = _acting()
        query = select(User).order_by(User.id)
        if not actor.is_admin:
            query = query.where(User.id == actor.user_id)
        with self.db.session() as session:
            items = [user_view(u) for u in session.scalars(query)]
        return {"total": len(items), "items": items}

    def update(self, user_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        """Role, disabled and limits; `changes` holds only the fields the caller sent (a None limit: no limit)."""
        actor = _require_admin()
        with self.db.session() as session:
            user = _user(session, user_id)
            merged = {"role": user.role, "max_running_tasks": user.max_running_tasks, "max_gpus": user.max_gpus,
                      "disabled": user.disabled} | changes
            problems = _user_problems(user.name, merged["role"], merged["max_running_tasks"], merged["max_gpus"])
            if problems:
                raise InvalidInput.of(problems)
            if user.id == actor.user_id and (merged["role"] != "admin" or merged["disabled"]):
                raise Conflict("an admin cannot demote or disable themselves; another admin can",
                               [ConfigProblem("role", "your own")])
            for field, value in merged.items():
                setattr(user, field, value)
            return user_view(user)

    def delete_user(self, user_id: int) -> dict[str, Any]:
        """Removes the user and their keys; what they made stays, owned by the id (an admin still sees it)."""
        actor = _require_admin()
        with self.db.session() as session:
            user = _user(session, user_id)
            if user.id == actor.user_id:
                raise Conflict("an admin cannot delete themselves", [ConfigProblem("id", "your own")])
            session.delete(user)
            return {"id": user_id, "deleted": True}

    # -- keys ----------------------------------------------------------------------------------------------------
    def create_key(self, name: str = "", user_id: int | None = None) -> dict[str, Any]:
        actor = _acting()
        owner = actor.user_id if user_id is None else user_id
        if owner != actor.user_id and not actor.is_admin:
            raise NotFound(f"user {owner} does not exist", [ConfigProblem("userId", "no such user")])
        if len(name) > 63:
            raise InvalidInput.of([ConfigProblem("name", "at most 63 characters")])
        with self.db.session() as session:
            _user(session, owner, "userId")
            secret = self._add_key(session, owner, name)
            key = session.scalar(select(ApiKey).where(ApiKey.secret_hash == hash_key(secret)))
            assert key is not None
            return key_view(key) | {"key": secret}

    def _add_key(self, session: Session, user_id: int, name: str) -> str:
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        session.add(ApiKey(user_id=user_id, name=name, prefix=secret[:10], secret_hash=hash_key(secret),
                           created_at=time.time()))
        session.flush()
        return secret

    def list_keys(self, user_id: int | None = None) -> dict[str, Any]:
        actor = _acting()
        query = select(ApiKey).order_by(ApiKey.id)
        if not actor.is_admin:
            query = query.where(ApiKey.user_id == actor.user_id)
        elif user_id is not None:
            query = query.where(ApiKey.user_id == user_id)
        with self.db.session() as session:
            items = [key_view(k) for k in session.scalars(query)]
        return {"total": len(items), "items": items}

    def revoke_key(self, key_id: int) -> dict[str, Any]:
        actor = _acting()
        with self.db.session() as session:
            key = session.get(ApiKey, key_id)
            if key is None or (key.user_id != actor.user_id and not actor.is_admin):
                raise NotFound(f"key {key_id} does not exist", [ConfigProblem("id", "no such key")])
            key.revoked_at = key.revoked_at or time.time()
            return key_view(key)

    # -- limits --------------------------------------------------------------------------------------------------
    def limits(self) -> dict[int, tuple[int | None, int | None]]:
        """user id → (most running tasks, most devices held); users without limits are left out."""
        with self.db.session() as session:
            rows = session.execute(select(User.id, User.max_running_tasks, User.max_gpus).where(
                (User.max_running_tasks.is_not(None)) | (User.max_gpus.is_not(None))))
            return {user_id: (tasks, gpus) for user_id, tasks, gpus in rows}


def device_limit_problem(session: Session, device_count: int) -> ConfigProblem | None:
    """A task asking for more devices than its user may hold would wait forever: refused when it is created."""
    actor = current_actor()
    user = session.get(User, actor.user_id) if actor else None
    if user is not None and user.max_gpus is not None and device_count > user.max_gpus:
        return ConfigProblem("gpuConfig", f"asks for {device_count} devices; user {user.name!r} may hold at most "
                             f"{user.max_gpus} (an admin changes it with `tuneforge users update`)")
    return None


def user_view(user: User) -> dict[str, Any]:
    return {"id": user.id, "name": user.name, "role": user.role, "disabled": user.disabled,
            "maxRunningTasks": user.max_running_tasks, "maxGpus": user.max_gpus, "createdAt": user.created_at}


def key_view(key: ApiKey) -> dict[str, Any]:
    return {"id": key.id, "userId": key.user_id, "name": key.name, "prefix": key.prefix, "createdAt": key.created_at,
            "lastUsedAt": key.last_used_at, "revokedAt": key.revoked_at}


def _user_problems(name: str, role: str, max_tasks: int | None, max_gpus: int | None) -> builtins.list[ConfigProblem]:
    problems = []
    if why := name_problem(name):
        problems.append(ConfigProblem("name", why))
    if role not in ROLES:
        problems.append(ConfigProblem("role", f"must be one of {', '.join(ROLES)}"))
    for field, value in (("maxRunningTasks", max_tasks), ("maxGpus", max_gpus)):
        if value is not None and not 0 <= value <= 10_000:
            problems.append(ConfigProblem(field, "must be between 0 and 10000, or null for no limit"))
    return problems


def _acting() -> Actor:
    actor = current_actor()
    if actor is None:  # the platform itself (the CLI's admin commands on the database): act as the local admin
        return Actor(0, "platform", is_admin=True)
    return actor


def _require_admin() -> Actor:
    actor = _acting()
    if not actor.is_admin:
        raise Forbidden("only an admin may manage users")
    return actor


def _user(session: Session, user_id: int, field: str = "id") -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} does not exist", [ConfigProblem(field, "no such user")])
    return user
