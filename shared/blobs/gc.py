"""When blobs go: after the commit that dropped their rows, with the transaction that wrote them, or as
orphans.

A row must never point at a missing blob, so a blob is written before its row is committed and deleted
only after the commit that removed its row: a rolled-back transaction never loses a blob that a row
still points to. A blob written in a transaction that then rolls back is deleted at once; one written
before a crash (no commit, no rollback) is an orphan: no row references it, and `sweep_orphans`, run
with the hourly retention purge, removes it once it is older than FITEXPLAIN_ORPHAN_BLOB_MINUTES.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import event, select
from sqlalchemy.orm import InstrumentedAttribute, Session, SessionTransaction

from shared.blobs.store import BlobStore, current_store
from shared.tables import JobChunk, JobPrepared, JobResult, ModelFile, StoredModel, Upload, utcnow

log = logging.getLogger(__name__)

_DELETE_AFTER_COMMIT = "fitexplain_blobs_delete_after_commit"
_WRITTEN = "fitexplain_blobs_written"

# A result's blobs: its gzip JSON and, for large results, its Parquet form (both name the Parquet form of a
# result kept only as Parquet).
RESULT_KEYS: tuple[InstrumentedAttribute[str | None], ...] = (JobResult.blob_key, JobResult.parquet_key)
# Every key prefix and the columns that reference its blobs.
REFERENCES: dict[str, tuple[InstrumentedAttribute[str | None], ...]] = {
    "uploads/": (Upload.blob_key,),
    "results/": RESULT_KEYS,
    "chunks/": (JobChunk.blob_key,),
    "prepared/": (JobPrepared.blob_key,),
    "models/": (StoredModel.blob_key, ModelFile.blob_key),
}


def delete_after_commit(session: Session, keys: Iterable[str | None]) -> None:
    """Delete these blobs once the session's transaction commits (their rows are gone by then)."""
    pending: list[str] = session.info.setdefault(_DELETE_AFTER_COMMIT, [])
    known = set(pending)
    for key in keys:
        if key and key not in known:  # a key named twice (a result kept only as Parquet) goes once
            known.add(key)
            pending.append(key)


def written(session: Session, key: str) -> None:
    """A blob this transaction wrote for a row it adds: deleted if the transaction does not commit."""
    session.info.setdefault(_WRITTEN, []).append(key)


def _delete(keys: list[str], why: str) -> None:
    """Delete blobs, never raising: this runs after a commit, which must not look failed. A blob left
    behind (the store is down) has no row any more: the orphan sweep removes it later."""
    for key in keys:
        try:
            current_store().delete(key)
        except Exception as exc:
            log.warning("could not delete blob %s (%s): %s", key, why, exc)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint: the outer transaction may still roll back
        return
    session.info.pop(_WRITTEN, None)
    _delete(session.info.pop(_DELETE_AFTER_COMMIT, []), "its row was deleted")


@event.listens_for(Session, "after_transaction_end")
def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None:
        return
    # Still listed here only when the transaction did not commit: its rows never existed.
    session.info.pop(_DELETE_AFTER_COMMIT, None)
    _delete(session.info.pop(_WRITTEN, []), "its transaction rolled back")


def sweep_orphans(
    session: Session, store: BlobStore, older_than_minutes: float, now: datetime | None = None
) -> int:
    """Delete blobs that no row references and that were written more than `older_than_minutes` ago
    (younger ones may belong to a transaction not yet committed). Returns how many were deleted."""
    cutoff = (now or utcnow()) - timedelta(minutes=older_than_minutes)
    deleted = 0
    for prefix, columns in REFERENCES.items():
        candidates = [blob.key for blob in store.list(prefix) if blob.modified < cutoff]
        for start in range(0, len(candidates), 500):
            batch = candidates[start : start + 500]
            referenced = {
                key for column in columns for key in session.scalars(select(column).where(column.in_(batch)))
            }
            for key in batch:
                if key not in referenced:
                    store.delete(key)
                    deleted += 1
    if deleted:
        log.info("deleted %d orphan blobs", deleted)
    return deleted
