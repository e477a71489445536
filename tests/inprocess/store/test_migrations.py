"""The migration chain and the schema it builds, on SQLite and on Postgres: one line of migrations in file
order, up, down to nothing and up again, the declared tables (shared/tables.py) equal to the migrated
ones, the storage-count triggers that the comparison cannot see, and a database made by an unreleased
schema refused with a message that says what to do."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from shared import settings
from shared.db import make_engine
from shared.store.jobstore import delete_job
from shared.store.migrate import REPO_ROOT, UnreleasedSchema, alembic_config, downgrade, migrate
from shared.store.uploads import StorageUsage, usage
from shared.tables import Base
from tests.inprocess.factories import Jobs

VERSIONS = REPO_ROOT / "migrations" / "versions"
POSTGRES_TRIGGERS = {
    "storage_usage_of_jobs",
    "storage_usage_of_results",
    "storage_usage_of_users",
    "storage_usage_of_job_models",
    "storage_usage_of_deleted_models",
}
SQLITE_TRIGGERS = {
    "storage_usage_job_inserted",
    "storage_usage_job_deleted",
    "storage_usage_job_upload_changed",
    "storage_usage_result_inserted",
    "storage_usage_result_deleted",
    "storage_usage_result_changed",
    "storage_usage_user_inserted",
    "storage_usage_model_kept",
    "storage_usage_model_gone",
}


@pytest.fixture
def engine(empty_database: str) -> Iterator[sa.Engine]:
    engine = make_engine(empty_database)
    yield engine
    engine.dispose()


def differences(engine: sa.Engine) -> list[object]:
    """What Alembic would have to change for the database to match shared/tables.py."""
    with engine.connect() as connection:
        return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


def triggers(engine: sa.Engine) -> set[str]:
    """The triggers of our tables (Postgres: with their functions, of the same names)."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            return set(connection.scalars(sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger'")))
        found = set(connection.scalars(sa.text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")))
        functions = set(
            connection.scalars(
                sa.text(
                    "SELECT proname FROM pg_proc JOIN pg_namespace n ON n.oid = pronamespace "
                    "WHERE nspname = 'public'"
                )
            )
        )
        assert found == functions, "each trigger runs its function of the same name"
        return found


def expected_triggers(engine: sa.Engine) -> set[str]:
    return POSTGRES_TRIGGERS if engine.dialect.name == "postgresql" else SQLITE_TRIGGERS


def test_the_chain_is_one_line_in_file_order() -> None:
    """Each migration's revision is its file's name (a sortable stamp first), and revises the file before."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    chain = list(reversed(list(script.walk_revisions())))  # base first
    files = sorted(path.stem for path in VERSIONS.glob("*.py"))
    assert [migration.revision for migration in chain] == files
    assert [migration.down_revision for migration in chain] == [None, *files[:-1]]
    assert script.get_heads() == [files[-1]]
    assert all(len(revision) <= 32 for revision in files), "alembic_version holds 32 characters"


def test_up_down_and_up_again_builds_the_declared_schema(empty_database: str, engine: sa.Engine) -> None:
    migrate(empty_database)
    assert differences(engine) == []
    assert triggers(engine) == expected_triggers(engine)

    downgrade(empty_database)
    assert sa.inspect(engine).get_table_names() == ["alembic_version"]
    assert triggers(engine) == set()

    migrate(empty_database)
    assert differences(engine) == []
    assert triggers(engine) == expected_triggers(engine)


def test_the_triggers_count_a_submit_and_a_delete(jobs: Jobs) -> None:
    alice = jobs.user("alice")
    with jobs.sessions() as session:
        assert usage(session, alice) == StorageUsage(0, 0, 0, 0)  # the row made with the user
    content = b"x,target\n1,0\n2,1\n"
    job_id = jobs.job(alice, content=content)
    with jobs.sessions() as session:
        assert usage(session, alice) == StorageUsage(len(content), 0, 1, 0)
    with jobs.sessions.begin() as session:
        delete_job(session, job_id)
    with jobs.sessions() as session:
        assert usage(session, alice) == StorageUsage(0, 0, 0, 0)


def stamp(engine: sa.Engine, revision: str) -> None:
    """Mark the database as being at `revision`, as a database migrated by another chain is."""
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
        connection.execute(sa.text("INSERT INTO alembic_version VALUES (:revision)"), {"revision": revision})


def test_a_database_of_an_unreleased_schema_is_refused(empty_database: str, engine: sa.Engine) -> None:
    stamp(engine, "0012")
    with pytest.raises(UnreleasedSchema) as refused:
        migrate(empty_database)
    assert "unreleased schema (revision 0012)" in str(refused.value)
    assert str(refused.value).endswith("and start again.")
    assert sa.inspect(engine).get_table_names() == ["alembic_version"]  # nothing was done


@pytest.fixture
def service_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The service's settings: embedded, under a fresh home (read by the CLI)."""
    home = tmp_path / "var"
    home.mkdir()
    for name in ("FITEXPLAIN_DATABASE_URL", "FITEXPLAIN_BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FITEXPLAIN_HOME", str(home))
    monkeypatch.chdir(tmp_path)  # no developer's .env
    settings.get_settings.cache_clear()
    yield home
    settings.get_settings.cache_clear()


@pytest.mark.parametrize("command", [["migrate"], ["api"], ["worker"]])
def test_the_commands_say_to_start_afresh_on_an_unreleased_schema(
    service_home: Path, command: list[str]
) -> None:
    import cli.main

    engine = make_engine(settings.get_settings().database_url)
    stamp(engine, "0012")
    engine.dispose()
    outcome = CliRunner().invoke(cli.main.app, command)
    assert outcome.exit_code == 1
    assert "Traceback" not in outcome.output
    assert outcome.output.strip() == (
        "This database was created by an unreleased schema (revision 0012); "
        f"delete {service_home.resolve()}/ and start again."
    )


def test_a_migrated_database_is_at_the_newest_revision(sessions: sessionmaker[Session]) -> None:
    newest = max(path.stem for path in VERSIONS.glob("*.py"))
    with sessions() as session:
        assert session.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == newest


def test_the_start_check_passes_over_a_database_that_is_down(
    service_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API answers 503 and a worker retries its claims while the database is down: neither is
    stopped at its start by the schema check."""
    import cli.main

    monkeypatch.setenv("FITEXPLAIN_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/nothing")
    settings.get_settings.cache_clear()
    cli.main._check_schema()
