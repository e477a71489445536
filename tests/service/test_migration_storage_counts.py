"""The storage-counts migration (0012): each user's counts start from the rows already there (the same
numbers the API counted over their jobs before), follow later changes, and the downgrade removes them."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.orm import Session

from shared.store.uploads import StorageUsage, usage
from tests.migrations import insert_old_job, just_before

pytestmark = [pytest.mark.service]


def insert_old_rows(engine: sa.Engine) -> dict[str, sa.Table]:
    """User 1 with two jobs on one upload and one on another, one result; user 2 with nothing."""
    metadata = sa.MetaData()
    metadata.reflect(engine, only=["users", "datasets", "jobs", "job_results"])
    t = metadata.tables
    now = sa.func.now()
    with engine.begin() as connection:
        insert_old_job(
            connection, t, endpoint="gbdtregression", dataset={"size_bytes": 100, "n_rows": 1, "n_columns": 1}
        )
        connection.execute(sa.insert(t["users"]).values(id=2, name="idle", is_admin=False, created_at=now))
        connection.execute(
            sa.insert(t["datasets"]).values(
                sha256="e" * 64, size_bytes=30, n_rows=1, n_columns=1, created_at=now
            )
        )
        for job_id, digest in (("old2", "d" * 64), ("old3", "e" * 64)):
            row = connection.execute(sa.select(t["jobs"]).where(t["jobs"].c.id == "old1")).mappings().one()
            connection.execute(sa.insert(t["jobs"]).values({**row, "id": job_id, "dataset_sha256": digest}))
        connection.execute(
            sa.insert(t["job_results"]).values(job_id="old1", size_bytes=17, stored_bytes=7, created_at=now)
        )
    return dict(t)


def test_counts_start_from_existing_rows_follow_changes_and_go_with_the_downgrade(database_url: str) -> None:
    config, revision, before, engine = just_before(database_url, "BACKFILL")
    assert (revision, before) == ("0012", "0011")
    tables = insert_old_rows(engine)
    command.upgrade(config, revision)
    with Session(engine) as session:
        assert usage(session, 1) == StorageUsage(uploads_bytes=130, results_bytes=7, uploads=2, results=1)
        assert usage(session, 2) == StorageUsage(0, 0, 0, 0)
    with engine.begin() as connection:  # the triggers keep them from now on
        connection.execute(sa.delete(tables["jobs"]).where(tables["jobs"].c.id.in_(["old1", "old3"])))
    with Session(engine) as session:
        assert usage(session, 1) == StorageUsage(uploads_bytes=100, results_bytes=0, uploads=1, results=0)
    command.downgrade(config, before)
    with engine.begin() as connection:
        assert "storage_usage" not in sa.inspect(connection).get_table_names()
        connection.execute(sa.delete(tables["jobs"]))  # no trigger is left to write to a missing table
    engine.dispose()
