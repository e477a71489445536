"""Helpers of the migration tests: an Alembic config for a database, the migration that defines a name
wherever the chain puts it, a database migrated to just before it, and a fresh database on SQLite and on
Postgres."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from shared.db import make_engine
from shared.store.migrate import alembic_config
from tests.stack import create_database, drop_database


def insert_old_job(
    connection: sa.Connection, tables: Mapping[str, sa.Table], *, endpoint: str, dataset: dict[str, object]
) -> None:
    """User 1, its dataset (`dataset`: the row's content and sizes) and its succeeded job "old1", as rows
    written before a migration; the test adds the job's result and whatever else its migration moves."""
    now = sa.func.now()
    connection.execute(sa.insert(tables["users"]).values(id=1, name="old", is_admin=False, created_at=now))
    connection.execute(sa.insert(tables["datasets"]).values(sha256="d" * 64, created_at=now, **dataset))
    connection.execute(
        sa.insert(tables["jobs"]).values(
            id="old1",
            user_id=1,
            endpoint=endpoint,
            params={},
            spec={"version": 1},
            dataset_sha256="d" * 64,
            status="succeeded",
            progress=1.0,
            progress_message="done",
            attempts=1,
            queue="small",
            stopping=False,
            created_at=now,
        )
    )


def migration_defining(config: Config, name: str) -> tuple[str, str]:
    """(revision, down_revision) of the migration whose module defines `name` (ids are not in file
    order: migrations written on parallel branches were re-chained when merged)."""
    for script in ScriptDirectory.from_config(config).walk_revisions():
        if hasattr(script.module, name):
            return script.revision, str(script.down_revision)
    raise AssertionError(f"no migration defines {name}")


class JustBefore(NamedTuple):
    """A database migrated to just before the migration under test, ready for the rows it will change."""

    config: Config
    revision: str  # the migration under test
    before: str  # its down revision: where the database is
    engine: sa.Engine


def just_before(database_url: str, name: str) -> JustBefore:
    """Migrate the empty database at `database_url` up to the migration that defines `name`, not
    including it."""
    config = alembic_config(database_url)
    revision, before = migration_defining(config, name)
    command.upgrade(config, before)
    return JustBefore(config, revision, before, make_engine(database_url))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database, on SQLite and then on Postgres."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    name = f"fx_migration_{uuid.uuid4().hex[:10]}"
    yield create_database(name)
    drop_database(name)
