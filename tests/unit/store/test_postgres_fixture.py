"""The `database_url` fixture gives a working, empty database on both backends the store supports."""

from __future__ import annotations

import pytest
import sqlalchemy as sa


def test_a_row_written_is_read_back(database_url: str, request: pytest.FixtureRequest) -> None:
    engine = sa.create_engine(database_url)
    try:
        # The variant id is the backend actually reached, not just a label.
        assert engine.dialect.name == request.node.callspec.id
        metadata = sa.MetaData()
        tasks = sa.Table(
            "tasks",
            metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("name", sa.String(64), nullable=False),
        )
        metadata.create_all(engine)
        with engine.begin() as connection:
            connection.execute(tasks.insert().values(name="sft-lora"))
        with engine.connect() as connection:
            rows = connection.execute(sa.select(tasks.c.id, tasks.c.name)).all()
        assert [tuple(row) for row in rows] == [(1, "sft-lora")]
    finally:
        engine.dispose()


def test_each_test_starts_with_an_empty_database(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    try:
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()
