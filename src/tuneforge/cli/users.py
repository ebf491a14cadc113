"""`tuneforge users …`: users and API keys on a tuneforge server over HTTP, as the key's user (the local admin's on
this machine): who am I, add / list / change users (admins), make / list / revoke keys. A new key is printed once.

`tuneforge users reset-local-key` works on this machine's database directly, without a server or a key: the way
back in when the local admin's key file was lost.

Exit codes: 0 done; 1 no server or a server fault; 2 the server refused the input."""

from __future__ import annotations

import typer
from rich.table import Table

from tuneforge.cli.remote import SERVER_ENV, ApiClient, server_url
from tuneforge.cli.tasks import JSON_HELP, SERVER_HELP, call_server, console, print_json, print_result

users_app = typer.Typer(no_args_is_help=True, help="Users (admin | member) and their API keys.")
keys_app = typer.Typer(no_args_is_help=True, help="API keys: made (shown once), listed, revoked.")
users_app.add_typer(keys_app, name="keys")


@users_app.callback()
def _server_option(ctx: typer.Context,
                   server: str = typer.Option(None, "--server", envvar=SERVER_ENV, help=SERVER_HELP)) -> None:
    ctx.obj = server_url(server)


@users_app.command("me")
def me(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """The user the API key belongs to."""
    def action(client: ApiClient) -> None:
        data = client.get("/users/getMe")
        print_result(data, f"{data['name']} ({data['role']}, id {data['id']})", as_json)

    call_server(ctx.obj, action)


@users_app.command("create")
def create(ctx: typer.Context, name: str = typer.Argument(..., help="Lowercase letters, digits and '-'."),
           role: str = typer.Option("member", "--role", help="admin | member"),
           max_running_tasks: int = typer.Option(None, "--max-running-tasks", help="Most tasks running at once."),
           max_gpus: int = typer.Option(None, "--max-gpus", help="Most devices their running tasks hold."),
           with_key: bool = typer.Option(True, "--key/--no-key", help="Also make the user's first API key."),
           as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Add a user (admins), with a first API key printed once."""
    def action(client: ApiClient) -> None:
        user = client.post("/users/createUser", {"name": name, "role": role, "maxRunningTasks": max_running_tasks,
                                                 "maxGpus": max_gpus})
        key = client.post("/users/createKey", {"name": "first", "userId": user["id"]}) if with_key else None
        if as_json:
            print_json({"user": user, "key": key})
            return
        console.print(f"created user {user['id']} [bold]{user['name']}[/bold] ({user['role']})")
        if key:
            _print_new_key(key["key"])

    call_server(ctx.obj, action)


@users_app.command("list")
def list_users(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Users (a member sees themselves)."""
    def action(client: ApiClient) -> None:
        data = client.get("/users/getUserList")
        table = Table("id", "name", "role", "disabled", "max running tasks", "max GPUs")
        for user in data["items"]:
            table.add_row(str(user["id"]), user["name"], user["role"], "yes" if user["disabled"] else "",
                          _limit(user["maxRunningTasks"]), _limit(user["maxGpus"]))
        print_result(data, table, as_json)

    call_server(ctx.obj, action)


@users_app.command("update")
def update(ctx: typer.Context, user_id: int = typer.Argument(..., help="The user's id."),
           role: str = typer.Option(None, "--role", help="admin | member"),
           disabled: bool = typer.Option(None, "--disabled/--enabled", help="A disabled user's keys stop working."),
           max_running_tasks: int = typer.Option(None, "--max-running-tasks", help="-1: no limit."),
           max_gpus: int = typer.Option(None, "--max-gpus", help="-1: no limit."),
           as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Change a user's role, limits or disabled flag (admins)."""
    def action(client: ApiClient) -> None:
        body: dict[str, object] = {"id": user_id}
        for field, value in (("role", role), ("disabled", disabled)):
            if value is not None:
                body[field] = value
        for field, limit in (("maxRunningTasks", max_running_tasks), ("maxGpus", max_gpus)):
            if limit is not None:
                body[field] = None if limit < 0 else limit
        data = client.post("/users/updateUser", body)
        print_result(data, f"updated user {data['id']} {data['name']}", as_json)

    call_server(ctx.obj, action)


@keys_app.command("create")
def create_key(ctx: typer.Context, name: str = typer.Option("", "--name", help="What the key is for."),
               user_id: int = typer.Option(None, "--user", help="Admins: a key for this user id."),
               as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Make an API key; it is printed this once."""
    def action(client: ApiClient) -> None:
        data = client.post("/users/createKey", {"name": name, "userId": user_id})
        if as_json:
            print_json(data)
        else:
            _print_new_key(data["key"])

    call_server(ctx.parent.obj if ctx.parent else None, action)


@keys_app.command("list")
def list_keys(ctx: typer.Context, user_id: int = typer.Option(None, "--user", help="Admins: this user's keys."),
              as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """API keys, without their secrets."""
    def action(client: ApiClient) -> None:
        data = client.get("/users/getKeyList", userId=user_id)
        table = Table("id", "user", "name", "key", "last used", "revoked")
        for key in data["items"]:
            table.add_row(str(key["id"]), str(key["userId"]), key["name"], f"{key['prefix']}…",
                          _when(key["lastUsedAt"]), _when(key["revokedAt"]))
        print_result(data, table, as_json)

    call_server(ctx.parent.obj if ctx.parent else None, action)


@keys_app.command("revoke")
def revoke_key(ctx: typer.Context, key_id: int = typer.Argument(..., help="The key's id (`users keys list`)."),
               as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Revoke a key: the next request with it is refused."""
    def action(client: ApiClient) -> None:
        data = client.post("/users/revokeKey", {"id": key_id})
        print_result(data, f"revoked key {data['id']} ({data['prefix']}…)", as_json)

    call_server(ctx.parent.obj if ctx.parent else None, action)


@users_app.command("reset-local-key")
def reset_local_key() -> None:
    """Make a new key for the local admin in this machine's database and write it to HOME/local-admin.key."""
    from tuneforge.service.users.users import UserService
    from tuneforge.settings import Settings
    from tuneforge.store import Database

    settings = Settings()
    database = Database(settings.database)
    try:
        database.upgrade()
        users = UserService(database, settings)
        users.ensure_local_admin()
        users.write_local_key(users.create_key("local", users.local_admin_actor().user_id)["key"])
    finally:
        database.dispose()
    console.print(f"a new key for the local admin is in {settings.local_key_file}", highlight=False)


def _print_new_key(key: str) -> None:
    console.print("API key (shown this once; send it as `Authorization: Bearer <key>` or set TUNEFORGE_API_KEY):")
    typer.echo(key)


def _limit(value: int | None) -> str:
    return "—" if value is None else str(value)


def _when(epoch: float | None) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch)) if epoch else ""
