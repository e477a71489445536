"""A user's job by id, or 404: another user's job answers exactly as a missing one, never 403. Shared by
every route that takes a job id (jobs, webhooks)."""

from __future__ import annotations

from fastapi import HTTPException, status
from sqlalchemy.orm import Session

from api import errors
from shared.tables import Job, User

NOT_FOUND = errors.documented({404: "No such job for this user."})


def owned_job(session: Session, job_id: str, user: User) -> Job:
    job = session.get(Job, job_id) if "\x00" not in job_id else None  # Postgres refuses NUL in text
    if job is None or job.user_id != user.id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"No job {job_id!r} for this user.")
    return job
