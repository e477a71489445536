"""Per-user submission limits, counted in the database so they hold across API processes."""

from __future__ import annotations

import time
from datetime import timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    and_,
    bindparam,
    case,
    func,
    literal,
    not_,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from shared.settings import Settings
from shared.store.uploads import StorageUsage, keeps_upload, refuse_over_quota, usage_query
from shared.tables import (
    HOLDING_STATUSES,
    Job,
    StorageCounts,
    UploadRejections,
    User,
    heartbeat_older_than,
    utcnow,
)


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
    session.execute(_user_lock(), {"locked_user": user_id})
    check_submission_limits(session, user_id, settings, upload=upload)


@cache
def _user_lock() -> Select[int]:
    """The user's row and their storage counts, locked in one statement. The counts come first, before
    the upload the submit shares: deleting a job locks them (its trigger, or `lock_storage_counts`)
    before it removes that upload, so taking them later, at the job's insert, could deadlock with it."""
    return (
        select(User.id)
        .join(StorageCounts, StorageCounts.user_id == User.id)
        .where(User.id == bindparam("locked_user"))
        .with_for_update()
    )


def holds_a_worker(stale_before: Any) -> ColumnElement[bool]:
    """Unfinished jobs, and cancelled ones whose computation is still being killed (unless their worker
    stopped beating before `stale_before`: a dead worker holds nothing)."""
    # The statuses as literals, not bound values: the planner then sees that this implies the
    # predicate of the partial index `ix_jobs_user_holding` and counts a user's jobs from it.
    holding = [literal(status.value, literal_execute=True) for status in HOLDING_STATUSES]
    return or_(
        Job.status.in_(holding),
        and_(Job.stopping, not_(heartbeat_older_than(Job.heartbeat_at, stale_before))),
    )


@cache
def _limits_statement(with_upload: bool) -> Select[*tuple[Any, ...]]:
    """The counts of `check_submission_limits` in one statement, built once with its values bound per
    call: building a statement of subqueries and computing its cache key cost SQLAlchemy milliseconds of
    Python on every submit (twice: before and after the body), more than the round trip. Each bound value
    takes the type of the column it is compared with (UtcDateTime: naive UTC on SQLite)."""
    user_id: BindParameter[int] = bindparam("user_id")
    active = (
        select(func.count())
        .select_from(Job)
        .where(Job.user_id == user_id, holds_a_worker(bindparam("stale_before")))
        .scalar_subquery()
    )
    recent = (
        select(func.count())
        .select_from(Job)
        .where(Job.user_id == user_id, Job.created_at > bindparam("recent_since"))
        .scalar_subquery()
    )
    if not with_upload:
        return select(active, recent)
    digest: BindParameter[str] = bindparam("digest")
    return usage_query(user_id).add_columns(keeps_upload(user_id, digest), active, recent)


def check_submission_limits(
    session: Session, user_id: int, settings: Settings, *, upload: tuple[str, int] | None = None
) -> None:
    """Raise RateLimited when the user has too many unfinished jobs or submitted too often this minute;
    with `upload` (sha256, bytes kept), StorageQuotaExceeded when keeping it would exceed the quota.
    All counted in one statement (one round trip, on every submit)."""
    now = utcnow()
    values: dict[str, Any] = {
        "user_id": user_id,
        "stale_before": now - timedelta(seconds=settings.stale_after_seconds),
        "recent_since": now - timedelta(minutes=1),
    }
    if upload is None:
        n_active, n_recent = session.execute(_limits_statement(False), values).one()
    else:
        row = session.execute(_limits_statement(True), {**values, "digest": upload[0]}).one()
        *counts, already_kept, n_active, n_recent = row
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


REJECTED_BYTES_PER_UNIT = 16 << 20
"""A refused upload counts one unit against the rejected-upload budget, and one more per this many bytes
received or decoded: the work it cost."""


def rejected_upload_cost(work_bytes: int) -> float:
    return 1 + work_bytes / REJECTED_BYTES_PER_UNIT


def _drained(level: Any, at: Any, now: float, rate: float) -> Any:
    return level - (now - at) * rate


def check_rejected_uploads(session: Session, user_id: int, settings: Settings) -> None:
    """RateLimited while the user's refused uploads of the last minute exceed the rejected-upload budget
    (FITEXPLAIN_MAX_REJECTED_UPLOADS_PER_MINUTE units, drained at that rate): checked before any body is
    read, so a user whose uploads keep being refused stops costing the API their reading."""
    row = session.execute(
        select(UploadRejections.level, UploadRejections.at).where(UploadRejections.user_id == user_id)
    ).one_or_none()
    if row is None:
        return
    budget = settings.max_rejected_uploads_per_minute
    rate = budget / 60
    level = _drained(row.level, row.at, time.time(), rate)
    if level >= budget:
        raise RateLimited(
            f"Too many of your uploads were refused in the last minute: the budget is {budget} a minute "
            "(FITEXPLAIN_MAX_REJECTED_UPLOADS_PER_MINUTE), each refused upload counting one, and one more "
            f"per {REJECTED_BYTES_PER_UNIT >> 20} MiB it cost to read. Fix the file before sending it again.",
            retry_after=int((level - budget) / rate) + 1,
        )


def charge_rejected_upload(session: Session, user_id: int, cost: float, settings: Settings) -> None:
    """Add a refused upload's cost to the user's bucket, drained first: one statement, whichever API
    process charges it."""
    now = time.time()
    rate = settings.max_rejected_uploads_per_minute / 60
    table = UploadRejections.__table__
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    drained = _drained(table.c.level, table.c.at, now, rate)
    statement = (
        insert(table)
        .values(user_id=user_id, level=cost, at=now)
        .on_conflict_do_update(
            index_elements=[table.c.user_id],
            set_={"level": case((drained > 0, drained), else_=0.0) + cost, "at": now},
        )
    )
    session.execute(statement)
