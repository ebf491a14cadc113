"""`tuneforge serve`: the API and the scheduler in one process — everything a single machine needs."""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(host: str | None, port: int | None, allow: list[Path], console: Console) -> None:
    import uvicorn

    from tuneforge.service.users.users import UserService
    from tuneforge.settings import Settings
    from tuneforge.store.database import Database, DatabaseUnavailable, without_password
    from tuneforge.web.app import create_console_app

    settings = Settings()
    database = Database(settings.database)
    try:  # before the server starts: a broken database is one clear sentence, not a traceback from a worker
        database.upgrade()
        UserService(database, settings).ensure_local_admin()  # its key goes into the sign-in link below
    except DatabaseUnavailable as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise SystemExit(1) from None
    finally:
        database.dispose()
    if allow:  # the folders task paths may point into, besides TUNEFORGE_HOME
        settings = settings.model_copy(update={"allowed_roots": [*settings.allowed_roots, *allow]})
    host, port = host or settings.host, port or settings.port
    if not settings.auth and not is_loopback(host):
        console.print(f"[red]error:[/red] refusing to serve on {host} with TUNEFORGE_AUTH=false: anyone who reaches "
                      "the port could read, stop and delete every task. Turn auth on (unset TUNEFORGE_AUTH) and give "
                      "each user a key (`tuneforge users keys create`), or serve on 127.0.0.1.", highlight=False)
        raise SystemExit(2)
    settings = settings.model_copy(update={"host": host})  # the Host header check answers to the bound address
    console.print(f"tuneforge console on http://{host}:{port}/console/tasks  (API docs: http://{host}:{port}/docs)")
    if settings.auth and settings.local_key_file.is_file():
        local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        key = settings.local_key_file.read_text(encoding="utf-8").strip()
        console.print(f"sign in as the local admin: http://{local}:{port}/console/login?key={key}  (the CLI on this "
                      f"machine reads the key from {settings.local_key_file})", highlight=False, soft_wrap=True)
    console.print(f"database: {without_password(settings.database)} · runs: {settings.runs_path} · allowed folders: "
                  f"{', '.join(str(r) for r in settings.roots)}")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    uvicorn.run(create_console_app(settings), host=host, port=port, log_level="warning")
