"""What a user's jobs keep (uploads and results), the per-user quota on it, and the removal of uploads.

The bytes live in the blob store (shared/blobs/store.py); the rows keep their key, size and checksum, and
quotas are counted from those columns. An upload's blob key is `uploads/<sha256>/<token>.parquet`: a
new key each time the content is stored again, so a release's deletion (after its commit) can never
remove the blob of a later copy.

Accounting: a user is charged for each distinct upload their jobs reference (content-addressed, so an
upload sent twice is stored and charged once), for each stored (gzip) result, and for each distinct kept
model (`shared.store.kept_models`, counted like uploads). An upload shared by
several users is charged in full to each of them: deleting your own jobs always frees what you were
charged, whoever else uses the same file. Fan-out working data (chunk parts, the prepared model) is not
charged: it lives only while its job runs (see `shared.dispatch.chunks.drop_working_data`).

Races on one upload (a submit reusing it, deletes of the jobs using it) are settled by locking its row:
`store_upload` takes a shared lock (FOR KEY SHARE, as the job's foreign key does), `release_upload` an
exclusive one before it looks for remaining jobs. A release waits for a submit reusing the upload and
then keeps it; a submit that comes second to a release stores the content again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from sqlalchemy import BindParameter, Exists, Select, bindparam, delete, exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.blobs import gc as blob_gc
from shared.blobs.store import current_store, new_token
from shared.tables import Job, StorageCounts, Upload, User

QUOTA_SETTING = "FITEXPLAIN_MAX_STORAGE_BYTES_PER_USER"


def sha256_hex(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


@dataclass(frozen=True)
class StorageUsage:
    """Bytes kept for one user's jobs."""

    uploads_bytes: int
    results_bytes: int
    uploads: int
    results: int
    models_bytes: int = 0  # kept models with their download files (shared.store.kept_models)
    models: int = 0

    @property
    def used_bytes(self) -> int:
        return self.uploads_bytes + self.results_bytes + self.models_bytes


class StorageQuotaExceeded(Exception):
    def __init__(self, message: str, usage: StorageUsage, quota: int) -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage
        self.quota = quota


def usage_query(user_id: int | BindParameter[int]) -> Select[int, int, int, int, int, int]:
    """The user's uploads bytes, results bytes, uploads, results, models bytes and models (StorageUsage's
    order), one row to
    which other counts can be added (one statement): read from the counts that the storage-count triggers
    keep, not counted over the user's jobs at every submit."""
    return (
        select(
            func.coalesce(StorageCounts.uploads_bytes, 0),
            func.coalesce(StorageCounts.results_bytes, 0),
            func.coalesce(StorageCounts.uploads, 0),
            func.coalesce(StorageCounts.results, 0),
            func.coalesce(StorageCounts.models_bytes, 0),
            func.coalesce(StorageCounts.models, 0),
        )
        .select_from(User)
        .outerjoin(StorageCounts, StorageCounts.user_id == User.id)
        .where(User.id == user_id)
    )


def lock_storage_counts(session: Session, user_ids: Iterable[int]) -> None:
    """Lock these users' storage counts, in user order, before deleting their jobs: the triggers that
    keep the counts lock them as each job row goes, so a purge of many users' jobs and a DELETE of one
    job, each holding a job row, would otherwise wait for each other's counts (a deadlock)."""
    ordered = sorted(set(user_ids))
    if ordered:
        session.execute(
            select(StorageCounts.user_id)
            .where(StorageCounts.user_id.in_(ordered))
            .order_by(StorageCounts.user_id)
            .with_for_update()
        ).all()


def usage(session: Session, user_id: int) -> StorageUsage:
    return StorageUsage(*(int(n) for n in session.execute(usage_query(user_id)).one()))


def keeps_upload(user_id: int | BindParameter[int], digest: str | BindParameter[str]) -> Exists:
    """Whether the user's jobs already reference the upload `digest` (then it costs nothing more)."""
    return exists().where(Job.user_id == user_id, Job.dataset_sha256 == digest)


def refuse_over_quota(current: StorageUsage, added: int, quota: int) -> None:
    """Raise StorageQuotaExceeded when `added` bytes (an upload; 0 if the user's jobs already reference
    it: `keeps_upload`) on top of `current` exceed `quota`.

    Results are not known at submit: a result may take a user over the quota, and their next submit is
    then refused. Binding only under the user's row lock (`shared.limits.reserve_submission`), in the
    transaction that stores the job.
    """
    if current.used_bytes + added > quota:
        raise StorageQuotaExceeded(
            f"Storage quota exceeded: your jobs keep {current.used_bytes:,} bytes (uploads "
            f"{current.uploads_bytes:,}, results {current.results_bytes:,}, models {current.models_bytes:,}) "
            f"and this upload adds {added:,}; "
            f"the quota is {quota:,} bytes per user ({QUOTA_SETTING}). Delete jobs you no longer need "
            "(DELETE /jobs/{id}) to free space; GET /account/usage shows what you use.",
            current,
            quota,
        )


def store_upload(
    session: Session,
    source: bytes | Path,
    digest: str,
    n_rows: int,
    n_columns: int,
) -> None:
    """Store an upload once per content (its sha256, `digest`), or lock the stored copy for this
    transaction so that a concurrent `release_upload` cannot remove it under the job about to use it.

    `source` is the upload's canonical Parquet file (shared.ml.ingest), or its bytes: streamed to the
    store, never read whole; a local store may hard-link the file, so it must not be written to again.
    The blob is written before its row; if this transaction does not commit, it is deleted again.
    """
    for _ in range(3):
        if session.execute(_upload_share_lock(), {"locked_digest": digest}).first() is not None:
            return
        key = f"uploads/{digest}/{new_token()}.parquet"
        blobs = current_store()
        if isinstance(source, Path):
            size = blobs.put_file(key, source, link=True)
        else:
            size = blobs.put_bytes(key, source)
        blob_gc.written(session, key)
        try:
            with session.begin_nested():
                session.add(
                    Upload(
                        sha256=digest,
                        blob_key=key,
                        size_bytes=size,
                        n_rows=n_rows,
                        n_columns=n_columns,
                    )
                )
            return
        except IntegrityError:
            blobs.delete(key)  # stored concurrently by another request: lock that copy instead
    raise RuntimeError(f"upload {digest} was stored and removed concurrently three times")


def release_upload(session: Session, digest: str) -> bool:
    """Delete an upload that no job references any more; True if it was deleted.

    The stored copy is locked first, so releases and submits of the same content take turns, and each
    sees the jobs the others committed: two jobs deleted at once never both leave their upload behind.
    Its blob goes after the commit.
    """
    locked = select(Upload.sha256, Upload.blob_key).where(Upload.sha256 == digest).with_for_update()
    row = session.execute(locked).first()
    if row is None:
        return False
    if session.scalar(select(exists().where(Job.dataset_sha256 == digest))):
        return False
    try:
        with session.begin_nested():
            session.execute(delete(Upload).where(Upload.sha256 == digest))
    except IntegrityError:  # a job inserted without `store_upload`'s lock: the foreign key keeps the upload
        return False
    blob_gc.delete_after_commit(session, [row.blob_key])
    return True


def upload_content(session: Session, digest: str | None) -> bytes:
    """The upload's bytes; empty when it is gone (the job was cancelled or deleted meanwhile).

    Reads the whole upload: for small callers. Workers read `upload_path`.
    """
    upload = session.get(Upload, digest) if digest is not None else None
    if upload is None:
        return b""
    try:
        return current_store().get_bytes(upload.blob_key)
    except FileNotFoundError:  # released after this session read its row
        return b""


@cache
def _upload_share_lock() -> Select[str]:
    """The stored upload's row, share-locked: `release_upload` cannot remove it under a job being created."""
    digest: BindParameter[str] = bindparam("locked_digest")
    return select(Upload.sha256).where(Upload.sha256 == digest).with_for_update(read=True, key_share=True)


def upload_path(session: Session, digest: str | None) -> Path | None:
    """A local file holding the upload (the blob itself in a local store, a cached download of a remote
    one); None when it is gone (the job was cancelled or deleted meanwhile)."""
    return stored_upload_path(session.get(Upload, digest) if digest is not None else None)


def stored_upload_path(upload: Upload | None) -> Path | None:
    """`upload_path` of an upload row already read (None: it is gone)."""
    if upload is None:
        return None
    try:
        return current_store().local_path(upload.blob_key)
    except FileNotFoundError:
        return None
