"""The migrated schema is the one shared/tables.py declares (procrastinate tests its migrations against
its models the same way): a table, column, index or constraint added on one side only fails here."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from shared.db import get_engine
from shared.settings import Settings
from shared.tables import Base


def test_the_migrations_build_the_declared_tables(service_settings: Settings) -> None:
    with get_engine().connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []
