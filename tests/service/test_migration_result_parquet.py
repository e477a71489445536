"""The result-Parquet migration (0011): older results have no Parquet form (converted on request) and
count as before; the downgrade drops the columns and keeps the results."""

from __future__ import annotations

import gzip

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.orm import Session

from shared.store.jobstore import open_result_parquet, result_body
from shared.store.uploads import usage
from tests.migrations import insert_old_job, just_before

pytestmark = [pytest.mark.service]

RESULT = gzip.compress(b'{"accuracy": 1.0}')


def insert_old_result(engine: sa.Engine) -> None:
    metadata = sa.MetaData()
    metadata.reflect(engine, only=["users", "datasets", "jobs", "job_results"])
    t = metadata.tables
    now = sa.func.now()
    with engine.begin() as connection:
        dataset = {"content": b"x", "size_bytes": 1, "n_rows": 1, "n_columns": 1}
        insert_old_job(connection, t, endpoint="gbdtregression", dataset=dataset)
        connection.execute(
            sa.insert(t["job_results"]).values(
                job_id="old1", body_gzip=RESULT, size_bytes=17, stored_bytes=len(RESULT), created_at=now
            )
        )


def result_columns(engine: sa.Engine) -> set[str]:
    with engine.connect() as connection:
        return {column["name"] for column in sa.inspect(connection).get_columns("job_results")}


def test_older_results_have_no_parquet_form_and_the_downgrade_keeps_them(database_url: str) -> None:
    config, revision, before, engine = just_before(database_url, "PARQUET_COLUMNS")
    assert (revision, before) == ("0011", "0010")
    insert_old_result(engine)
    command.upgrade(config, revision)
    assert {"parquet_key", "parquet_bytes"} <= result_columns(engine)
    with engine.connect() as connection:
        row = connection.execute(sa.text("SELECT parquet_key, parquet_bytes FROM job_results")).one()
    assert tuple(row) == (None, 0)
    with Session(engine) as session:
        assert open_result_parquet(session, "old1") is None  # converted from the JSON on request
        assert result_body(session, "old1") == RESULT
    command.upgrade(config, "head")  # the storage counts (0012) start from the migrated rows
    with Session(engine) as session:
        assert usage(session, 1).results_bytes == len(RESULT)
    command.downgrade(config, before)
    assert not {"parquet_key", "parquet_bytes"} & result_columns(engine)
    with engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT body_gzip FROM job_results")) == RESULT
    engine.dispose()
