"""Retention: finished jobs older than FITEXPLAIN_RETENTION_DAYS go, with their results, uploads and
kept models.

Results, events, chunks and model cards follow their job by ON DELETE CASCADE, and their blobs go after
the commit; an upload or a kept model goes only when no remaining job uses it (both are shared by
content; `shared.store.uploads.release_upload`, `shared.store.kept_models.release_model`). Running it
twice, or from several API processes, is harmless.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from shared.blobs import gc as blob_gc
from shared.db import rows_changed
from shared.store import kept_models
from shared.store.uploads import lock_storage_counts, release_upload
from shared.tables import FINISHED, Job, JobChunk, JobPrepared, JobResult, utcnow


def purge_expired(session: Session, retention_days: float, now: datetime | None = None) -> dict[str, int]:
    """Delete finished jobs that finished before `now - retention_days`; returns what was deleted.

    The caller commits. Unfinished jobs are never touched, however old.
    """
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    expired = (
        select(Job.id)
        .where(Job.status.in_(FINISHED), func.coalesce(Job.finished_at, Job.created_at) < cutoff)
        .scalar_subquery()
    )
    owners_and_uploads = session.execute(
        select(Job.user_id, Job.dataset_sha256).where(Job.id.in_(expired))
    ).all()
    digests = {digest for _, digest in owners_and_uploads}
    models = kept_models.models_of_jobs(session, expired)
    results = session.scalar(select(func.count()).select_from(JobResult).where(JobResult.job_id.in_(expired)))
    for column, job_column in (
        *((column, JobResult.job_id) for column in blob_gc.RESULT_KEYS),
        (JobChunk.blob_key, JobChunk.job_id),
        (JobPrepared.blob_key, JobPrepared.job_id),
    ):
        blob_gc.delete_after_commit(session, session.scalars(select(column).where(job_column.in_(expired))))
    lock_storage_counts(session, (owner for owner, _ in owners_and_uploads))
    jobs = rows_changed(session, delete(Job).where(Job.id.in_(expired)))
    # In one order everywhere: two API processes purging at once must not deadlock on each other's locks.
    datasets = sum(release_upload(session, digest) for digest in sorted(d for d in digests if d is not None))
    released = sum(kept_models.release_model(session, model) for model in sorted(models))
    return {"jobs": jobs, "results": results or 0, "datasets": datasets, "models": released}
