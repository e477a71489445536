"""Per-user submission limits, counted in the database so they hold across API processes."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import ColumnElement, and_, func, not_, or_, select
from sqlalchemy.orm import Session

from shared.settings import Settings
from shared.storage import StorageUsage, keeps_upload, refuse_over_quota, usage_query
from shared.tables import Job, JobStatus, User, heartbeat_stale, utcnow


class RateLimited(Exception):
    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


def enforce_submission_limits(session: Session, user_id: int, settings: Settings) -> None:
    """A cheap early check, before the upload is read (the binding one is `reserve_submission`): the
    user's rate and unfinished jobs, and a storage quota already used up.

    The upload's own size cannot be charged yet: an upload the user's jobs already keep costs nothing
    (it is recognised by its sha256, known once it is read), and what is kept is its Parquet conversion,
    not the bytes sent. A user whose results took them past the quota is refused here, as the binding
    check would refuse them whatever they send.
    """
    check_submission_limits(session, user_id, settings, upload=("", 0))


def reserve_submission(
    session: Session, user_id: int, settings: Settings, *, upload: tuple[str, int] | None = None
) -> None:
    """Lock the user's row, then check: concurrent submissions of one user queue here, so the job the
    caller inserts in this same transaction is counted by the next one (no check-then-insert race).
    `upload` (sha256, bytes kept) is checked against the storage quota too."""
    session.execute(select(User.id).where(User.id == user_id).with_for_update())
    check_submission_limits(session, user_id, settings, upload=upload)


def holds_a_worker(stale_after: float) -> ColumnElement[bool]:
    """Unfinished jobs, and cancelled ones whose computation is still being killed (unless their worker
    stopped beating: a dead worker holds nothing)."""
    return or_(
        Job.status.in_([JobStatus.queued, JobStatus.running]),
        and_(Job.stopping, not_(heartbeat_stale(Job.heartbeat_at, stale_after))),
    )


def check_submission_limits(
    session: Session, user_id: int, settings: Settings, *, upload: tuple[str, int] | None = None
) -> None:
    """Raise RateLimited when the user has too many unfinished jobs or submitted too often this minute;
    with `upload` (sha256, bytes kept), StorageQuotaExceeded when keeping it would exceed the quota.
    All counted in one statement (one round trip, on every submit)."""
    active = (
        select(func.count())
        .select_from(Job)
        .where(Job.user_id == user_id, holds_a_worker(settings.stale_after_seconds))
        .scalar_subquery()
    )
    recent = (
        select(func.count())
        .select_from(Job)
        .where(Job.user_id == user_id, Job.created_at > utcnow() - timedelta(minutes=1))
        .scalar_subquery()
    )
    if upload is None:
        n_active, n_recent = session.execute(select(active, recent)).one()
    else:
        query = usage_query(user_id).add_columns(keeps_upload(user_id, upload[0]), active, recent)
        *counts, already_kept, n_active, n_recent = session.execute(query).one()
    if n_active >= settings.max_running_jobs_per_user:
        raise RateLimited(
            f"You have {n_active} unfinished jobs; the limit is {settings.max_running_jobs_per_user} "
            "(FITEXPLAIN_MAX_RUNNING_JOBS_PER_USER). Wait for one to finish or cancel one.",
            retry_after=5,
        )
    if n_recent >= settings.max_submissions_per_minute:
        raise RateLimited(
            f"You submitted {n_recent} jobs in the last minute; the limit is "
            f"{settings.max_submissions_per_minute} (FITEXPLAIN_MAX_SUBMISSIONS_PER_MINUTE).",
            retry_after=60,
        )
    if upload is not None:
        current = StorageUsage(*(int(n) for n in counts))
        refuse_over_quota(current, 0 if already_kept else upload[1], settings.max_storage_bytes_per_user)
