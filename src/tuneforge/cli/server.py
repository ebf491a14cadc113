"""`tuneforge serve`: the API and the scheduler in one process — everything a single machine needs."""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console


def serve(host: str | None, port: int | None, allow: list[Path], console: Console) -> None:
    import uvicorn

    from tuneforge.settings import Settings
    from tuneforge.store.database import Database, DatabaseUnavailable, without_password
    from tuneforge.web.app import create_console_app

    settings = Settings()
    database = Database(settings.database)
    try:  # before the server starts: a broken database is one clear sentence, not a traceback from a worker
        database.upgrade()
    except DatabaseUnavailable as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise SystemExit(1) from None
    finally:
        database.dispose()
    if allow:  # the folders task paths may point into, besides TUNEFORGE_HOME
        settings = settings.model_copy(update={"allowed_roots": [*settings.allowed_roots, *allow]})
    host, port = host or settings.host, port or settings.port
    console.print(f"tuneforge console on http://{host}:{port}/console/tasks  (API docs: http://{host}:{port}/docs)")
    console.print(f"database: {without_password(settings.database)} · runs: {settings.runs_path} · allowed folders: "
                  f"{', '.join(str(r) for r in settings.roots)}")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    uvicorn.run(create_console_app(settings), host=host, port=port, log_level="warning")
