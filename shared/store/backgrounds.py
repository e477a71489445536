"""The SHAP background file sent with a job (`shared.tables.JobBackground`): kept with the job in the
transaction that creates it, read by the worker that computes it, copied to a re-run."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.tables import JobBackground


def keep_background(session: Session, job_id: str, sha256: str, n_rows: int, parquet: bytes) -> None:
    """Keep a job's background (its feature columns as Parquet; `sha256` of the file as sent)."""
    session.add(JobBackground(job_id=job_id, sha256=sha256, n_rows=n_rows, parquet=parquet))


def background_of(session: Session, job_id: str) -> bytes | None:
    """The job's kept background, or None when it was sent none (or is gone with its job)."""
    return session.scalar(select(JobBackground.parquet).where(JobBackground.job_id == job_id))


def copy_background(session: Session, source_job: str, new_job: str) -> None:
    """Give `new_job` (a re-run of `source_job`) the same background, if it had one."""
    kept = session.get(JobBackground, source_job)
    if kept is not None:
        keep_background(session, new_job, kept.sha256, kept.n_rows, kept.parquet)
