"""Moving bytes that rows from before migration 0010 keep inline into the blob store (`fitexplain
move-inline-bytes`): optional, as such rows are read inline meanwhile; it frees Postgres of them.

Uploads and results only: fan-out working data lives only while its job runs. Each batch is one
transaction (rows locked with SKIP LOCKED, so it can run beside the service): blobs are written, then
the rows point to them and drop their inline bytes; a batch that fails leaves its rows inline and its
blobs are deleted with the rollback.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shared.blobs import gc as blob_gc
from shared.blobs.store import current_store, new_token
from shared.tables import JobResult, Upload


def move_uploads(session: Session, limit: int = 100) -> int:
    """Move up to `limit` inline uploads to the blob store; how many were moved (the caller commits)."""
    rows = session.execute(
        select(Upload.sha256, Upload.format, Upload.content)
        .where(Upload.blob_key.is_(None), Upload.content.is_not(None))
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    store = current_store()
    for digest, format, content in rows:
        key = f"uploads/{digest}/{new_token()}.{format}"
        store.put_bytes(key, content)
        blob_gc.written(session, key)
        session.execute(update(Upload).where(Upload.sha256 == digest).values(blob_key=key, content=None))
    return len(rows)


def move_results(session: Session, limit: int = 100) -> int:
    """Move up to `limit` inline results to the blob store; how many were moved (the caller commits)."""
    rows = session.execute(
        select(JobResult.job_id, JobResult.body_gzip)
        .where(JobResult.blob_key.is_(None), JobResult.body_gzip.is_not(None))
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    store = current_store()
    for job_id, body in rows:
        key = f"results/{job_id}/{new_token()}.json.gz"
        store.put_bytes(key, body)
        blob_gc.written(session, key)
        session.execute(
            update(JobResult).where(JobResult.job_id == job_id).values(blob_key=key, body_gzip=None)
        )
    return len(rows)
