"""Alembic environment: runs on the connection tuneforge hands over (Database.upgrade), or on a URL for the CLI."""

from alembic import context
from sqlalchemy import create_engine

from tuneforge.store import Base  # every table module registered on Base.metadata

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    with create_engine(config.get_main_option("sqlalchemy.url")).connect() as connection:
        _run(connection)
        connection.commit()


def _run(connection) -> None:
    render_as_batch = connection.dialect.name == "sqlite"  # SQLite alters tables by copying them
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=render_as_batch)
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
