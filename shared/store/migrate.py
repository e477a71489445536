"""The schema, built by Alembic from `migrations/`: the one place that sets Alembic up, for `fitexplain
migrate` (and `serve`), the API and worker commands' start, the tests and the benchmarks.

A database stamped with a revision the chain does not have was made by a schema that was never
released: it is refused with `UnreleasedSchema`, whose message says to start afresh, before Alembic
would fail on it with a stack trace.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from shared.db import make_engine
from shared.settings import get_settings

REPO_ROOT = Path(__file__).resolve().parents[2]


class UnreleasedSchema(RuntimeError):
    """The database is at a revision that no migration in `migrations/versions` has."""


def alembic_config(url: str) -> Config:
    """Alembic's configuration for the database at `url` (migrations/env.py reads it from here)."""
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    config.attributes["database_url"] = url
    return config


def migrate(url: str | None = None, revision: str = "head") -> None:
    """Upgrade the database at `url` (default: the service's) to `revision`; raise UnreleasedSchema
    for a database the chain does not know."""
    url = url or get_settings().database_url
    config = alembic_config(url)
    check_known_revision(url, config)
    command.upgrade(config, revision)


def downgrade(url: str, revision: str = "base") -> None:
    """Downgrade the database at `url` to `revision` (default: nothing of ours left)."""
    config = alembic_config(url)
    check_known_revision(url, config)
    command.downgrade(config, revision)


def current_revisions(url: str) -> tuple[str, ...]:
    """The revisions the database is stamped with (none for an empty database)."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_heads()
    finally:
        engine.dispose()


def check_known_revision(url: str | None = None, config: Config | None = None) -> None:
    """Raise UnreleasedSchema when the database at `url` (default: the service's) is stamped with a
    revision the migration chain does not have."""
    url = url or get_settings().database_url
    script = ScriptDirectory.from_config(config or alembic_config(url))
    known = {migration.revision for migration in script.walk_revisions()}
    for revision in current_revisions(url):
        if revision not in known:
            raise UnreleasedSchema(
                f"This database was created by an unreleased schema (revision {revision}); "
                f"{_start_afresh(url)} and start again."
            )


def _start_afresh(url: str) -> str:
    """What to delete: the service's home folder for its embedded SQLite, else the database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return f"drop the database {parsed.database}"
    home = get_settings().home.resolve()
    database = Path(parsed.database).resolve()
    if database.is_relative_to(home):
        return f"delete {home}/"
    return f"delete {database}"
