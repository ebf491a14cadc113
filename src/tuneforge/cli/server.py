"""`tuneforge serve`: the API and the scheduler in one process — everything a single machine needs."""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console


def serve(host: str | None, port: int | None, allow: list[Path], console: Console) -> None:
    import uvicorn

    from tuneforge.settings import Settings
    from tuneforge.web.app import create_console_app

    settings = Settings()
    if allow:  # the folders task paths may point into, besides TUNEFORGE_HOME
        settings = settings.model_copy(update={"allowed_roots": [*settings.allowed_roots, *allow]})
    host, port = host or settings.host, port or settings.port
    console.print(f"tuneforge console on http://{host}:{port}/console/tasks  (API docs: http://{host}:{port}/docs)")
    console.print(f"database: {_shown_url(settings.database)} · runs: {settings.runs_path} · allowed folders: "
                  f"{', '.join(str(r) for r in settings.roots)}")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    uvicorn.run(create_console_app(settings), host=host, port=port, log_level="warning")


def _shown_url(url: str) -> str:
    """The database URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        credentials, location = rest.rsplit("@", 1)
        return f"{scheme}://{credentials.split(':', 1)[0]}:***@{location}" if ":" in credentials else url
    return url
