"""A user's job by its id or a unique prefix of it, or 404: another user's job answers exactly as a missing
one, never 403, and a prefix is matched among the caller's own jobs only. Shared by every route that takes
a job id (jobs, webhooks)."""

from __future__ import annotations

from fastapi import HTTPException, status
from sqlalchemy.orm import Session

from api import errors
from shared.store.job_ids import FULL_ID, MIN_PREFIX, is_id_text, jobs_with_prefix
from shared.tables import Job, User

NOT_FOUND = errors.documented({404: "No such job for this user."})
BY_PREFIX = errors.documented(
    {
        404: "No such job for this user.",
        409: "The id prefix matches several of your jobs (`ambiguous_id`: `prefix`, `count`, `matches`).",
        422: f"The id prefix is shorter than {MIN_PREFIX} characters (`id_too_short`: `minimum`).",
    }
)
"""The answers of a route whose `{job_id}` may be a prefix."""
SHOWN_MATCHES = 10
"""At most this many ids of an ambiguous prefix are listed (the newest first)."""


def owned_job(session: Session, job_id: str, user: User) -> Job:
    """The caller's job named by `job_id`: its full id, or a prefix of at least MIN_PREFIX characters
    that only one of the caller's jobs starts with (ids are lowercase hex; uppercase is read as
    lowercase)."""
    wanted = job_id.lower()
    if len(wanted) < MIN_PREFIX:
        raise errors.CodedHTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY,
            "id_too_short",
            f"Job id {job_id!r} is too short: give the full id or at least its first {MIN_PREFIX} "
            "characters.",
            minimum=MIN_PREFIX,
        )
    if not is_id_text(wanted):
        raise _not_found(job_id)
    if len(wanted) == FULL_ID:
        job = session.get(Job, wanted)
        if job is None or job.user_id != user.id:
            raise _not_found(job_id)
        return job
    matches = jobs_with_prefix(session, user.id, wanted, limit=SHOWN_MATCHES)
    if matches.count > 1:
        listed = ", ".join(matches.ids) + (", ..." if matches.count > len(matches.ids) else "")
        raise errors.CodedHTTPException(
            status.HTTP_409_CONFLICT,
            "ambiguous_id",
            f"Job id prefix {wanted!r} matches {matches.count} of your jobs ({listed}): give more "
            "characters.",
            prefix=wanted,
            count=matches.count,
            matches=matches.ids,
        )
    job = session.get(Job, matches.ids[0]) if matches.ids else None
    if job is None:  # none matched, or it was deleted just now
        raise _not_found(job_id)
    return job


def _not_found(job_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"No job {job_id!r} for this user.")
