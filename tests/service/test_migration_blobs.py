"""The blob storage migration: rows written before it keep their inline bytes, readable as before, with
their stored sizes and checksums filled in; the downgrade brings blobs back inline."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.orm import Session

from shared import settings
from shared.blobs.store import current_store
from shared.store.jobstore import result_body
from shared.store.uploads import upload_content, upload_path, usage
from tests.migrations import insert_old_job, just_before

pytestmark = [pytest.mark.service]

CSV = b"a,b,target\n1,2,0\n3,4,1\n"
RESULT = gzip.compress(b'{"accuracy": 1.0}')


@pytest.fixture
def local_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process's blob store: a directory of its own (the downgrade reads blobs through it)."""
    monkeypatch.setenv("FITEXPLAIN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FITEXPLAIN_STORAGE_URL", raising=False)
    settings.get_settings.cache_clear()
    yield
    settings.get_settings.cache_clear()


def insert_old_rows(engine: sa.Engine) -> None:
    metadata = sa.MetaData()
    metadata.reflect(engine)
    t = metadata.tables
    now = sa.func.now()
    with engine.begin() as connection:
        dataset = {"content": CSV, "size_bytes": len(CSV), "n_rows": 2, "n_columns": 3}
        insert_old_job(connection, t, endpoint="gbdtclassification", dataset=dataset)
        connection.execute(
            sa.insert(t["job_results"]).values(job_id="old1", body_gzip=RESULT, size_bytes=17, created_at=now)
        )
        connection.execute(
            sa.insert(t["job_chunks"]).values(
                job_id="old1",
                method="shap",
                index=0,
                start=0,
                stop=1,
                status="done",
                attempts=1,
                body_gzip=b"p",
            )
        )
        connection.execute(sa.insert(t["job_prepared"]).values(job_id="old1", body=b"model", created_at=now))


def test_old_rows_keep_their_bytes_inline_and_get_sizes_and_checksums(
    database_url: str, local_store: None
) -> None:
    config, revision, before, engine = just_before(database_url, "INLINE")
    insert_old_rows(engine)
    command.upgrade(config, revision)
    with engine.connect() as connection:
        dataset = connection.execute(sa.text("SELECT blob_key, format, content FROM datasets")).one()
        result = connection.execute(sa.text("SELECT blob_key, stored_bytes, sha256 FROM job_results")).one()
    assert dataset == (None, "csv", CSV)
    assert result == (None, len(RESULT), hashlib.sha256(RESULT).hexdigest())
    command.upgrade(config, "head")  # today's code reads them (its tables have later columns too)
    with Session(engine) as session:
        assert upload_content(session, "d" * 64) == CSV
        path = upload_path(session, "d" * 64)
        assert path is not None and path.read_bytes() == CSV
        assert result_body(session, "old1") == RESULT
        assert usage(session, 1).results_bytes == len(RESULT)
        # A row written after the migration has its bytes in the store: the downgrade fetches them.
        current_store().put_bytes("results/new/1.json.gz", b"new result")
        session.execute(
            sa.text("UPDATE job_results SET blob_key = 'results/new/1.json.gz', body_gzip = NULL")
        )
        session.commit()
    command.downgrade(config, before)
    with engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT body_gzip FROM job_results")) == b"new result"
        assert connection.scalar(sa.text("SELECT content FROM datasets")) == CSV
        columns = {column["name"] for column in sa.inspect(connection).get_columns("job_results")}
    assert "blob_key" not in columns and "sha256" not in columns
    engine.dispose()
