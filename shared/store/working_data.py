"""What a job keeps only while it runs, for the workers helping with its fan-out: the chunks' parts and
the prepared model (shared.dispatch.chunks writes them). Finishing, cancelling or deleting the job drops
them; their blobs go after the commit.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from shared.blobs import gc as blob_gc
from shared.ml.model.predict.spec import is_predict
from shared.ml.spec import JobSpec
from shared.tables import Job, JobChunk, JobPrepared


def may_hold_working_data(job: Job) -> bool:
    """Whether the job can have chunks or a prepared model: only explanations fan out (worker/fanout.py),
    so a job that asks for none never has any (and finishing it need not look)."""
    if is_predict(job.spec):  # a predict job scores in batches in its own worker
        return False
    return bool(JobSpec.from_json(job.spec).interpretability)


def drop_working_data(session: Session, job_id: str) -> None:
    """Free what a finished job kept for its helpers: the chunks' parts (merged into the result, or
    useless) and the prepared model. The chunk rows stay, a few bytes each, as a record of the split.
    Their blobs go after the commit."""
    holding = (JobChunk.job_id == job_id, JobChunk.blob_key.is_not(None))
    keys = session.scalars(select(JobChunk.blob_key).where(*holding).with_for_update()).all()
    session.execute(update(JobChunk).where(*holding).values(blob_key=None))
    blob_gc.delete_after_commit(session, keys)
    drop_prepared(session, job_id)


def drop_prepared(session: Session, job_id: str) -> None:
    keys = session.scalars(
        delete(JobPrepared).where(JobPrepared.job_id == job_id).returning(JobPrepared.blob_key)
    ).all()
    blob_gc.delete_after_commit(session, keys)
