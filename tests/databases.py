"""Test databases on the machine's Postgres: fresh and empty, or fresh at the latest schema, copied from
one migrated once per test process (running the migrations takes seconds, copying a database a fraction
of one)."""

from __future__ import annotations

import os
import uuid
from functools import cache

import psycopg

from shared.store.migrate import migrate

PG_ADMIN_DSN = os.environ.get("FITEXPLAIN_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")


def database_url(name: str) -> str:
    """The service's URL (the psycopg driver) of the database `name` on the test Postgres."""
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    return f"{base}/{name}"


def create_database(name: str, template: str | None = None) -> str:
    """A new database `name` (a copy of `template` when given) replacing any of that name; its URL."""
    copy = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"{copy}')
    return database_url(name)


def drop_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@cache
def _migrated_template() -> str:
    """The name of this process's database at the latest schema, never connected to after migrating (a
    template with a session open cannot be copied)."""
    name = f"fx_template_{uuid.uuid4().hex[:10]}"
    migrate(create_database(name))
    return name


def create_migrated_database(name: str) -> str:
    """A new database `name` at the latest schema; its URL."""
    return create_database(name, template=_migrated_template())


def drop_migrated_template() -> None:
    """Drop this process's template, if one was made (at the end of the test session)."""
    if _migrated_template.cache_info().currsize:
        drop_database(_migrated_template())
        _migrated_template.cache_clear()
