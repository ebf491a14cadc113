"""Users and API keys: /users/getMe, createUser, getUserList, updateUser, deleteUser (admins), and createKey,
getKeyList, revokeKey (each user their own; admins anyone's). A new key is in the answer once and never again."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi import Body as JsonBody
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from tuneforge.api.deps import PlatformDep
from tuneforge.api.requests import Body, IdBody, required_id
from tuneforge.service.users.users import UserService

router = APIRouter(prefix="/users", tags=["users"])


def get_users(platform: PlatformDep) -> UserService:
    return platform.users


UsersDep = Annotated[UserService, Depends(get_users)]


class View(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class UserView(View):
    id: int
    name: str
    role: str = Field(description="admin (sees and acts on everything) | member (their own things only)")
    disabled: bool
    max_running_tasks: int | None = Field(description="Most tasks of theirs running at once; null: no limit.")
    max_gpus: int | None = Field(description="Most devices their running tasks hold together; null: no limit.")
    created_at: float


class UserList(View):
    total: int
    items: list[UserView]


class UserDeleted(View):
    id: int
    deleted: bool


class KeyView(View):
    id: int
    user_id: int
    name: str
    prefix: str = Field(description="The key's first characters, to tell keys apart.")
    created_at: float
    last_used_at: float | None
    revoked_at: float | None


class NewKey(KeyView):
    key: str = Field(description="The key itself: shown this once, stored only as a hash.")


class KeyList(View):
    total: int
    items: list[KeyView]


class CreateUserBody(Body):
    name: str = Field(description="Unique: lowercase letters, digits and '-'.", examples=["alice"])
    role: str = Field(default="member", description="admin | member")
    max_running_tasks: int | None = None
    max_gpus: int | None = None


class UpdateUserBody(Body):
    id: int
    role: str | None = None
    disabled: bool | None = None
    max_running_tasks: int | None = Field(default=None, description="null: no limit (send the field to change it).")
    max_gpus: int | None = None


class CreateKeyBody(Body):
    name: str = Field(default="", description="What the key is for, e.g. 'laptop' or 'ci'.")
    user_id: int | None = Field(default=None, description="Admins: make a key for this user. Default: yourself.")


class KeyIdBody(IdBody):
    pass


@router.get("/getMe", response_model=UserView, summary="The user the API key belongs to")
def get_me(users: UsersDep) -> UserView:
    return UserView.model_validate(users.me())


@router.post("/createUser", response_model=UserView, status_code=201, summary="Add a user (admins)")
def create_user(users: UsersDep, body: CreateUserBody) -> UserView:
    return UserView.model_validate(users.create_user(body.name, body.role, body.max_running_tasks, body.max_gpus))


@router.get("/getUserList", response_model=UserList, summary="Users (a member sees themselves)")
def get_user_list(users: UsersDep) -> UserList:
    return UserList.model_validate(users.list())


@router.post("/updateUser", response_model=UserView, summary="Change a user's role, limits or disabled flag (admins)")
def update_user(users: UsersDep, body: UpdateUserBody) -> UserView:
    changes = body.model_dump(exclude_unset=True, exclude={"id"})
    return UserView.model_validate(users.update(body.id, changes))


@router.delete("/deleteUser", response_model=UserDeleted,
               summary="Remove a user and their keys (admins); what they made stays")
def delete_user(users: UsersDep, id: int | None = None, body: IdBody | None = JsonBody(None)) -> UserDeleted:
    return UserDeleted.model_validate(users.delete_user(required_id(id, body)))


@router.post("/createKey", response_model=NewKey, status_code=201,
             summary="Make an API key; the answer holds it once")
def create_key(users: UsersDep, body: CreateKeyBody) -> NewKey:
    return NewKey.model_validate(users.create_key(body.name, body.user_id))


@router.get("/getKeyList", response_model=KeyList, summary="API keys (without the secrets)")
def get_key_list(users: UsersDep, user_id: int | None = Query(None, alias="userId")) -> KeyList:
    return KeyList.model_validate(users.list_keys(user_id))


@router.post("/revokeKey", response_model=KeyView,
             summary="Revoke a key (?id=N or a JSON body {\"id\": N}); the next request with it is refused")
def revoke_key(users: UsersDep, id: int | None = None, body: KeyIdBody | None = JsonBody(None)) -> KeyView:
    return KeyView.model_validate(users.revoke_key(required_id(id, body)))
