"""Engine, sessions and migrations. SQLite (WAL) by default; PostgreSQL by URL. Alembic migrates at start."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


class DatabaseUnavailable(RuntimeError):
    """The database cannot be opened or read: which one, why (the driver's first line, no SQL), what to do."""

    def __init__(self, url: str, cause: Exception) -> None:
        reason = str(getattr(cause, "orig", None) or cause).splitlines()[0]
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            where = f"the SQLite database {path}"
            todo = (f"restore it from a backup, or move it aside (mv {path} {path}.broken) and start again with an "
                    "empty one; the run folders and models on disk are kept")
        else:
            where = f"the database at {without_password(url)}"
            todo = "check TUNEFORGE_DATABASE_URL, that the server runs and that the user may connect"
        super().__init__(f"{where} cannot be used: {reason}. What to do: {todo}")


def without_password(url: str) -> str:
    """The database URL as it may be shown: the password replaced by ***."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        credentials, location = rest.rsplit("@", 1)
        return f"{scheme}://{credentials.split(':', 1)[0]}:***@{location}" if ":" in credentials else url
    return url


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed when the block ends, rolled back on an error."""
        with self.sessions() as session, session.begin():
            yield session

    def upgrade(self) -> None:
        """Open the database and migrate it; DatabaseUnavailable says which database and what to do."""
        from sqlalchemy.exc import SQLAlchemyError

        try:
            upgrade(self.engine)
        except SQLAlchemyError as exc:
            raise DatabaseUnavailable(self.url, exc) from exc

    def check(self) -> None:
        """One query: raises DatabaseUnavailable when the database cannot answer (for /health)."""
        from sqlalchemy import text
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1 FROM alembic_version"))
        except SQLAlchemyError as exc:
            raise DatabaseUnavailable(self.url, exc) from exc

    def dispose(self) -> None:
        self.engine.dispose()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _sqlite_pragmas(connection, _record) -> None:
    # WAL: the API reads while the scheduler writes; busy_timeout waits for a writer instead of failing.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def upgrade(engine: Engine) -> None:
    """Apply Alembic migrations up to head; a database already at head costs one query."""
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    script = ScriptDirectory.from_config(config)
    with engine.connect() as connection:
        if MigrationContext.configure(connection).get_current_revision() == script.get_current_head():
            return
    from alembic import command

    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
