"""Job state changes, each a single SQL statement that says what it expects.

queued -> running (claim_next takes the fairest queued job of a queue) -> succeeded | failed;
queued | running -> cancelled;
running -> queued when a worker vanished (stale heartbeat) or the job's computation died, at most
`max_attempts` times. A job cancelled while running is `stopping` until its worker killed the computation.
A job that finishes drops its fan-out working data; a cancelled job also lets go of its upload at once.
Job bytes live in the blob store: a result's blob is written before its row, and blobs of deleted rows
go after the commit (shared/blobs/gc.py).
Every move to succeeded, failed or cancelled writes the job's webhook outbox row in the same transaction,
and a NOTIFY that wakes the API's waiting requests on commit (shared/store/job_events.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import IO, Any

import orjson
from isal import igzip
from sqlalchemy import (
    ColumnElement,
    Float,
    Insert,
    Integer,
    Select,
    String,
    Update,
    and_,
    bindparam,
    cast,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, aliased

from shared.blobs import gc as blob_gc
from shared.blobs.store import current_store, new_token
from shared.db import on_postgres, rows_changed
from shared.ml.headline import headline_score
from shared.store import kept_models
from shared.store.job_events import notification_payload, notify_column, notify_finished
from shared.store.uploads import lock_storage_counts, release_upload, sha256_hex
from shared.store.working_data import drop_working_data, may_hold_working_data
from shared.tables import (
    FINISHED,
    Job,
    JobEvent,
    JobResult,
    JobStatus,
    Upload,
    UtcDateTime,
    heartbeat_stale,
    new_id,
    utcnow,
)
from shared.webhooks.outbox import enqueue_finished


def add_event(session: Session, job_id: str, event: str, detail: str | None = None) -> None:
    session.add(JobEvent(job_id=job_id, event=event, detail=detail))


def create_job(
    session: Session,
    *,
    user_id: int,
    endpoint: str,
    params: dict[str, Any],
    spec: dict[str, Any],
    dataset: str,
    estimated_seconds: float | None = None,
    queue: str = "small",
    job_id: str | None = None,
    data_filename: str | None = None,
) -> Job:
    """A queued job, with its "submitted" event; `spec` is the validated JobSpec's versioned JSON, `params`
    the request as sent; `job_id` when the caller chose it (else a new one); `data_filename` the uploaded
    file's name as sent, if any."""
    values = {
        "id": job_id or new_id(),
        "data_filename": data_filename or None,
        "user_id": user_id,
        "endpoint": endpoint,
        "params": params,
        "spec": spec,
        "dataset_sha256": dataset,
        "estimated_seconds": estimated_seconds,
        "queue": queue,
        "status": JobStatus.queued,
        "progress": 0.0,
        "progress_message": "queued",
        "attempts": 0,
        "stopping": False,
        "created_at": utcnow(),
    }
    if on_postgres(session):
        created = _created_in_one_statement(tuple(values))
        return session.execute(created, {f"new_{k}": v for k, v in values.items()}).scalar_one()
    job = Job(**values)
    session.add(job)
    session.add(JobEvent(job_id=job.id, event="submitted", at=job.created_at))
    session.flush()
    return job


@cache
def _created_in_one_statement(columns: tuple[str, ...]) -> Select[Job]:
    """Postgres: `create_job` as one INSERT of `columns` returning the job, its event inserted in a CTE;
    built once, its values bound per call (as `new_<column>`: a bound value named as a column is
    reserved)."""
    table = Job.__table__.c
    created = (
        insert(Job)
        .values({name: bindparam(f"new_{name}", type_=table[name].type) for name in columns})
        .returning(Job)
        .cte("created")
    )
    event = insert(JobEvent).from_select(
        ["job_id", "event", "at"], select(created.c.id, literal("submitted"), created.c.created_at)
    )
    return select(aliased(Job, created)).add_cte(event.cte("submitted_event"))


def mark_dispatched(session: Session, marks: list[tuple[str, datetime]]) -> None:
    """Record (with its "dispatched" event) that each (job id, published at) was published then, unless a
    worker is claiming the job right now (it holds the row): the API must not wait for that claim, and
    the mark only matters while the job is queued (a job left queued unmarked is published once more by
    the sweep, which is harmless). A job deleted meanwhile gets nothing. Two statements for all of them."""
    if not marks:
        return
    values = [{"marked_job": job_id, "marked_at": at} for job_id, at in marks]
    event, mark = _dispatch_statements()
    session.execute(event, values)
    session.execute(mark, values)


@cache
def _dispatch_statements() -> tuple[Insert, Update]:
    """Core statements (on the tables, not the ORM classes: a list of values is then an executemany, not
    an ORM bulk update by primary key). A mark is not written for a job undispatched since it was
    published: its message was lost with the broker's queue (`forget_dispatches`)."""
    jobs, events = Job.__table__, JobEvent.__table__
    at = bindparam("marked_at", type_=UtcDateTime())
    event = select(jobs.c.id, literal("dispatched"), at).where(jobs.c.id == bindparam("marked_job"))
    free = (
        select(jobs.c.id)
        .where(jobs.c.id == bindparam("marked_job"))
        .with_for_update(skip_locked=True, key_share=True)
        .scalar_subquery()
    )
    lost_since = (
        select(events.c.id)
        .where(
            events.c.job_id == bindparam("marked_job"), events.c.event == "undispatched", events.c.at >= at
        )
        .exists()
    )
    return (
        insert(events).from_select(["job_id", "event", "at"], event.where(~lost_since)),
        update(jobs).where(jobs.c.id == free, ~lost_since).values(dispatched_at=at),
    )


@dataclass(frozen=True)
class Claim:
    """The outcome of trying to start a job: `job` is set when this worker now owns it, with `upload`,
    the row of its upload (None when it is gone)."""

    job: Job | None
    reason: str
    upload: Upload | None = None


RECENT_USE_SECONDS = 600.0
"""How far back a user's finished jobs count in their recent use (FITEXPLAIN_FAIR_SHARE_WINDOW_SECONDS)."""
UNKNOWN_COST_SECONDS = 1.0
"""The worker-seconds a job counts for when neither its measured time nor its estimate is known."""


def claim_next(
    session: Session,
    job_id: str,
    *,
    worker: str,
    stale_after: float,
    max_attempts: int,
    recent_use_seconds: float = RECENT_USE_SECONDS,
) -> Claim:
    """Take the fairest queued job of the queue that `job_id`'s message came from, or else `job_id` itself.

    A job's message is a wake-up for its queue, not an order to run that job: the worker takes the queued
    job whose user used the least worker time recently (their running jobs, and those that finished in
    the last `recent_use_seconds`), the oldest first among equals (fair share by use, not arrival). Every
    queued job has one message, so each message that finds a queued job runs one, and every job gets its
    turn: a user who waits uses nothing, so another's stream of submissions overtakes them only until it
    has used more. When the queue holds no queued job, the message's own job is claimed as `claim` does
    (a running job whose worker was lost is taken over; a finished one is left alone).
    """
    now = utcnow()
    values = {
        "message_job": job_id,
        "max_attempts": max_attempts,
        "claimer": worker,
        "claimed_at": now,
        "recent_since": now - timedelta(seconds=recent_use_seconds),
    }
    if on_postgres(session):
        found = session.execute(_fairest_claim_started(), values).first()
        if found is not None:
            job, upload = found
            return Claim(job, "claimed", upload)
    else:
        claimed: Job | None = session.execute(_fairest_claim(), values).scalar()
        if claimed is not None:
            return _claimed(session, claimed, worker)
    return claim(session, job_id, worker=worker, stale_after=stale_after, max_attempts=max_attempts)


@cache
def _fairest_claim_started() -> Select[Job, Upload]:
    """`_fairest_claim`, its "started" event and the claimed job's upload row in one statement (Postgres:
    an UPDATE and an INSERT in CTEs): the claim is on every job's path, and three statements cost it
    three round trips and an ORM flush."""
    claimed = _fairest_claim().cte("claimed")
    detail = (
        literal("attempt ")
        + cast(claimed.c.attempts, String)
        + literal(" on ")
        + bindparam("claimer", type_=String)
    )
    started = insert(JobEvent).from_select(
        ["job_id", "event", "detail", "at"],
        select(claimed.c.id, literal("started"), detail, bindparam("claimed_at", type_=UtcDateTime())),
    )
    return (
        select(aliased(Job, claimed), Upload)
        .outerjoin(Upload, Upload.sha256 == claimed.c.dataset_sha256)
        .add_cte(started.cte("started"))
        .execution_options(populate_existing=True)
    )


@cache
def _fairest_claim() -> Update:
    """Claim the queued job of the message's queue whose user used the least worker time recently (then
    the oldest), in one conditional UPDATE returning it; none when the queue has no queued job free to
    take. A user's recent use is the sum of their jobs running now and finished since the bound
    `recent_since`, each counted by its measured worker-seconds, else its estimate (a running job).

    On Postgres the candidate row is chosen FOR UPDATE SKIP LOCKED, so concurrent workers take different
    jobs without waiting on each other; SQLite has a single writer, so the statement is atomic there.
    Built once, its values bound per call: building it and its cache key cost SQLAlchemy more Python time
    than the claim's round trip, on every job.
    """
    queue = select(Job.queue).where(Job.id == bindparam("message_job")).scalar_subquery()  # none if gone
    waiting, others = aliased(Job), aliased(Job)
    waiting_users = select(waiting.user_id).where(waiting.queue == queue, waiting.status == JobStatus.queued)
    cost = func.coalesce(others.worker_seconds, others.estimated_seconds, UNKNOWN_COST_SECONDS)
    recent = or_(
        others.status == JobStatus.running,
        others.finished_at >= bindparam("recent_since", type_=UtcDateTime()),
    )
    # Each waiting user's recent use, summed once per user (not once per queued job).
    recent_use = (
        select(others.user_id, func.sum(cost).label("used"))
        .where(others.user_id.in_(waiting_users), recent)
        .group_by(others.user_id)
        .subquery("recent_use")
    )
    fairest = (
        select(Job.id)
        .outerjoin(recent_use, recent_use.c.user_id == Job.user_id)
        .where(Job.queue == queue, Job.status == JobStatus.queued, Job.attempts < bindparam("max_attempts"))
        .order_by(func.coalesce(recent_use.c.used, 0.0), Job.created_at, Job.id)
        .limit(1)
        .with_for_update(skip_locked=True, of=Job, key_share=True)  # not skipped for a child row's FK lock
        .scalar_subquery()
    )
    return (
        update(Job)
        .where(Job.id == fairest, Job.status == JobStatus.queued)
        .values(**_claimed_values(bindparam("claimer"), bindparam("claimed_at")))
        .returning(Job)
        .execution_options(synchronize_session=False, populate_existing=True)
    )


def claim(session: Session, job_id: str, *, worker: str, stale_after: float, max_attempts: int) -> Claim:
    """Atomically take a queued job (or a running one whose worker stopped beating)."""
    lost = and_(Job.status == JobStatus.running, heartbeat_stale(Job.heartbeat_at, stale_after))
    runnable = or_(Job.status == JobStatus.queued, lost)
    claimed = session.execute(
        update(Job)
        .where(Job.id == job_id, runnable, Job.attempts < max_attempts)
        .values(**_claimed_values(worker, utcnow()))
        .returning(Job)
        .execution_options(synchronize_session=False, populate_existing=True)
    ).scalar()
    if claimed is not None:
        return _claimed(session, claimed, worker)
    job = session.get(Job, job_id)
    if job is None:
        return Claim(None, "gone")
    if job.status in FINISHED:
        return Claim(None, f"already {job.status}")
    exhausted = job.attempts >= max_attempts and (
        job.status == JobStatus.queued
        or session.scalar(select(func.count()).where(Job.id == job_id, lost)) == 1
    )
    if exhausted:
        fail(session, job_id, "worker_lost", worker_lost_message(job.attempts))
        return Claim(None, "attempts exhausted")
    return Claim(None, "running elsewhere")


def _claimed_values(worker: Any, now: Any) -> dict[str, Any]:
    """The columns a claim sets (`worker` and `now`: values, or bound parameters of a prebuilt claim)."""
    return {
        "status": JobStatus.running,
        "attempts": Job.attempts + 1,
        "worker": worker,
        "started_at": now,
        "heartbeat_at": now,
        "progress": 0.0,
        "progress_message": "starting",
    }


def _claimed(session: Session, job: Job, worker: str) -> Claim:
    """The claim of `job`, as its claiming UPDATE returned it (no second read of the row)."""
    session.add(
        JobEvent(
            job_id=job.id, event="started", detail=f"attempt {job.attempts} on {worker}", at=job.started_at
        )
    )
    upload = session.get(Upload, job.dataset_sha256) if job.dataset_sha256 is not None else None
    return Claim(job, "claimed", upload)


def held(job_id: Any, worker: Any, attempt: Any | None) -> list[ColumnElement[bool]]:
    """The lease a worker's write must still hold: the job running on `worker`, in `attempt` (None: any
    attempt). Every claim counts a new attempt, so a worker that lost the job (stopped past its heartbeat,
    requeued, claimed again, even by a process of the same name) can no longer write it."""
    conditions = [Job.id == job_id, Job.status == JobStatus.running, Job.worker == worker]
    if attempt is not None:
        conditions.append(Job.attempts == attempt)
    return conditions


def heartbeat(
    session: Session,
    job_id: str,
    worker: str,
    progress: float | None,
    message: str | None,
    *,
    attempt: int | None = None,
) -> bool:
    """Record liveness (and progress); False when the job is no longer ours (cancelled, reclaimed)."""
    values: dict[str, Any] = {"heartbeat_at": utcnow()}
    if progress is not None:
        values["progress"] = min(max(progress, 0.0), 1.0)
    if message is not None:
        values["progress_message"] = message[:200]
    return bool(
        rows_changed(
            session,
            update(Job).where(*held(job_id, worker, attempt)).values(**values),
        )
    )


def succeed(
    session: Session,
    job_id: str,
    worker: str,
    result: dict[str, Any] | None,
    parquet: bytes | Path | None = None,
    *,
    attempt: int | None = None,
) -> bool:
    """Store the result (and `parquet`, its Parquet form: bytes, or a local file the store may take as
    is, when given) and mark the job succeeded, if the job is still `worker`'s (in `attempt`, when given:
    see `held`). A result of None is kept only as its Parquet form (a predict job's result of many rows,
    whose JSON is written from it on request)."""
    # The blobs first (outside the job row's lock): a row without its blob must never exist. If the
    # commit then fails, the blobs are deleted with the rollback, or swept as orphans after a crash.
    token = new_token()
    blobs = current_store()
    written: list[str] = []
    parquet_key, parquet_bytes = None, 0
    if parquet is not None:
        parquet_key = f"results/{job_id}/{token}.parquet"
        if isinstance(parquet, Path):
            parquet_bytes = blobs.put_file(parquet_key, parquet, link=True)
        else:
            parquet_bytes = blobs.put_bytes(parquet_key, parquet)
        written.append(parquet_key)
        blob_gc.written(session, parquet_key)
    compressed = None
    if result is not None:
        # orjson and gzip level 1: a 100k x 100 SHAP result encodes in 2 s instead of 16 s (6% larger).
        body = orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY)
        compressed = igzip.compress(body, 1)  # ISA-L: 2.5x faster than zlib at level 1, a bit smaller
        key = f"results/{job_id}/{token}.json.gz"
        blobs.put_bytes(key, compressed)
        written.append(key)
        blob_gc.written(session, key)
        stored = {"blob_key": key, "size_bytes": len(body), "stored_bytes": len(compressed)}
        stored["sha256"] = sha256_hex(compressed)
    else:
        assert parquet_key is not None, "a result without its JSON is kept as Parquet"
        stored = {"blob_key": parquet_key, "size_bytes": 0, "stored_bytes": parquet_bytes, "sha256": None}
    stored.update(parquet_key=parquet_key, parquet_bytes=parquet_bytes, json_stored=result is not None)
    score = headline_score(result) if result is not None else None
    job = _finish_succeeded(session, job_id, worker, stored, compressed, score, attempt)
    if job is None:
        for written_key in written:
            blobs.delete(written_key)
        return False
    if may_hold_working_data(job):
        drop_working_data(session, job_id)
    enqueue_finished(session, job_id, result, job=job)
    return True


def _finish_succeeded(
    session: Session,
    job_id: str,
    worker: str,
    stored: dict[str, Any],
    compressed: bytes | None,
    score: tuple[str, float] | None,
    attempt: int | None,
) -> Job | None:
    """Mark the job succeeded if it is still running on `worker`, with its headline `score` (name, value),
    its result row (`stored`: the JobResult columns) and its event: a job gets its result row only here,
    in the transaction that makes it succeeded. On Postgres one statement, which also sends the
    notification (`compressed` rides in it when small), delivered when the transaction commits. None
    when the job is no longer ours."""
    now = utcnow()
    finishing = {
        "job_id": job_id,
        "finisher": worker,
        "attempt": attempt,
        "now": now,
        "headline_name": score[0] if score else None,
        "headline_value": score[1] if score else None,
    }
    if on_postgres(session):
        values = {**finishing, "payload": notification_payload(job_id, compressed)}
        statement = _succeeded_in_one_statement(tuple(stored))
        found = session.execute(statement, {**values, **stored}).first()
        return found[0] if found is not None else None
    job = session.execute(
        _succeeding().returning(Job).execution_options(populate_existing=True), finishing
    ).scalar()
    if job is not None:
        session.add(JobResult(job_id=job_id, created_at=now, **stored))
        session.add(JobEvent(job_id=job_id, event="succeeded", at=now))
    return job


def _succeeding() -> Update:
    """The UPDATE that makes a job still running on the bound `finisher` (a worker), in the bound
    `attempt` (None: any), succeeded at the bound `now`, with its headline score (`headline_name`,
    `headline_value`). (A bound value named as a column of the table would be taken for a value to SET.)"""
    attempt = bindparam("attempt", type_=Integer)
    return (
        update(Job)
        .where(Job.id == bindparam("job_id"), Job.status == JobStatus.running)
        .where(Job.worker == bindparam("finisher"), or_(attempt.is_(None), Job.attempts == attempt))
        .values(
            status=JobStatus.succeeded,
            progress=1.0,
            progress_message="done",
            finished_at=bindparam("now"),
            score_name=bindparam("headline_name", type_=String),
            score_value=bindparam("headline_value", type_=Float),
        )
        .execution_options(synchronize_session=False)
    )


@cache
def _succeeded_in_one_statement(columns: tuple[str, ...]) -> Select[Job, Any]:
    """Postgres: `_finish_succeeded` as an UPDATE returning the job and its notification, with the result
    row (`columns` of it bound by name) and the event inserted in CTEs; built once, its values bound per
    call. Three statements and an ORM flush cost the last step of every job about 1.5 ms more."""
    notify = notify_column(bindparam("payload")).label("notified")
    finished = _succeeding().returning(Job, notify).cte("finished")
    result_row = insert(JobResult).from_select(
        ["job_id", *columns, "created_at"],
        select(
            finished.c.id,
            *(bindparam(name, type_=JobResult.__table__.c[name].type) for name in columns),
            bindparam("now", type_=UtcDateTime()),
        ),
    )
    event = insert(JobEvent).from_select(
        ["job_id", "event", "at"],
        select(finished.c.id, literal("succeeded"), bindparam("now", type_=UtcDateTime())),
    )
    return (
        select(aliased(Job, finished), finished.c.notified)
        .add_cte(result_row.cte("result_row"), event.cte("succeeded_event"))
        .execution_options(populate_existing=True)
    )


def fail(
    session: Session,
    job_id: str,
    code: str,
    message: str,
    worker: str | None = None,
    *,
    attempt: int | None = None,
) -> bool:
    """Mark an unfinished job failed; with `worker`, only while it holds the job (see `held`)."""
    conditions = [Job.id == job_id, Job.status.in_([JobStatus.queued, JobStatus.running])]
    if worker is not None:
        conditions = held(job_id, worker, attempt)
    done = rows_changed(
        session,
        update(Job)
        .where(*conditions)
        .values(
            status=JobStatus.failed,
            error_code=code,
            error_message=message,
            progress_message="failed",
            finished_at=utcnow(),
        ),
    )
    if done:
        drop_working_data(session, job_id)
        add_event(session, job_id, "failed", f"{code}: {message}")
        enqueue_finished(session, job_id)
        notify_finished(session, job_id)
    return bool(done)


def cancel(session: Session, job_id: str) -> bool:
    """Cancel an unfinished job and remove what it kept at once: its working data, and its upload unless
    another job uses it. The job row stays (with no upload) to show that it was cancelled."""
    done = rows_changed(
        session,
        update(Job)
        .where(Job.id == job_id, Job.status.in_([JobStatus.queued, JobStatus.running]))
        .values(
            status=JobStatus.cancelled,
            progress_message="cancelled",
            finished_at=utcnow(),
            stopping=Job.status == JobStatus.running,  # its worker still has to stop the computation
        ),
    )
    if done:
        add_event(session, job_id, "cancelled")
        enqueue_finished(session, job_id)  # its summary still reads the upload's row count
        notify_finished(session, job_id)
        digest = session.scalar(select(Job.dataset_sha256).where(Job.id == job_id))
        session.execute(update(Job).where(Job.id == job_id).values(dataset_sha256=None))
        drop_working_data(session, job_id)
        if digest is not None:
            release_upload(session, digest)
    return bool(done)


def requeue_stale(session: Session, *, stale_after: float, max_attempts: int) -> tuple[list[str], list[str]]:
    """Running jobs whose worker stopped beating go back to queued, or fail once they have used up
    their attempts (a job that kills every worker it meets must not loop). Returns (requeued, failed)."""
    lost = and_(Job.status == JobStatus.running, heartbeat_stale(Job.heartbeat_at, stale_after))
    exhausted = list(
        session.execute(select(Job.id, Job.attempts).where(lost, Job.attempts >= max_attempts)).all()
    )
    failed = [
        job_id
        for job_id, attempts in exhausted
        if fail(session, job_id, "worker_lost", worker_lost_message(attempts))
    ]
    requeued = list(
        session.execute(
            update(Job)
            .where(lost, Job.attempts < max_attempts)
            .values(status=JobStatus.queued, dispatched_at=None, progress_message="requeued: worker lost")
            .returning(Job.id)
        ).scalars()
    )
    for job_id in requeued:
        add_event(session, job_id, "requeued", "worker stopped sending heartbeats")
    return requeued, failed


def worker_lost_message(attempts: int) -> str:
    return (
        f"The job stopped its worker {attempts} times (out of memory or killed); it will not be "
        "retried. Try fewer rows, fewer features or another model."
    )


def forget_dispatches(session: Session) -> list[str]:
    """The broker lost its queue: every queued job becomes undispatched (with an "undispatched" event),
    for the sweep to publish again; returns their ids. A dispatch mark still owed for a message published
    before this (shared/dispatch/marks.py) is then not written: `mark_dispatched` skips a job
    undispatched after the mark's publish time."""
    forgotten = update(Job).where(Job.status == JobStatus.queued).values(dispatched_at=None).returning(Job.id)
    ids = list(session.scalars(forgotten))
    for job_id in ids:
        add_event(session, job_id, "undispatched", "the broker lost its queue")
    return ids


def undispatched(
    session: Session, *, older_than: float = 0.0, limit: int | None = 100
) -> list[tuple[str, str]]:
    """(id, queue) of queued jobs whose message was never published (the broker was down), the oldest
    first (at most `limit`; None: all)."""
    cutoff = utcnow() - timedelta(seconds=older_than)
    return list(
        session.execute(
            select(Job.id, Job.queue)
            .where(Job.status == JobStatus.queued, Job.dispatched_at.is_(None), Job.created_at <= cutoff)
            .order_by(Job.created_at)
            .limit(limit)
        ).tuples()
    )


def result_body(session: Session, job_id: str) -> bytes | None:
    """The stored result: gzip-compressed JSON; None when there is none (or it was just deleted, or the
    result is kept only as Parquet: `open_result_parquet`)."""
    row = session.get(JobResult, job_id)
    if row is None or not row.json_stored:
        return None
    try:
        return current_store().get_bytes(row.blob_key)
    except FileNotFoundError:  # the job was deleted after this session read its row
        return None


def open_result(session: Session, job_id: str) -> IO[bytes] | None:
    """The stored result (gzip-compressed JSON) as a binary stream, for streaming responses; the caller
    closes it. None when there is none (or the result is kept only as Parquet)."""
    row = session.get(JobResult, job_id)
    return None if row is None or not row.json_stored else _open_blob(row.blob_key)


def json_stored(session: Session, job_id: str) -> bool | None:
    """Whether the job's result has its JSON stored (false: it is kept only as Parquet); None when the job
    has no result."""
    found: bool | None = session.scalar(select(JobResult.json_stored).where(JobResult.job_id == job_id))
    return found


def open_result_parquet(session: Session, job_id: str) -> IO[bytes] | None:
    """The result's stored Parquet form as a binary stream (the caller closes it); None when the result
    has none (small results: converted from the JSON on request) or is gone."""
    key = session.scalar(select(JobResult.parquet_key).where(JobResult.job_id == job_id))
    return None if key is None else _open_blob(key)


def _open_blob(key: str) -> IO[bytes] | None:
    try:
        return current_store().open(key)
    except FileNotFoundError:  # the job was deleted after this session read its row
        return None


def delete_job(session: Session, job_id: str) -> None:
    """Delete a job with its result, events, working data and model card; its upload and kept model go
    too unless another job uses them. Their blobs go after the commit."""
    job = session.get(Job, job_id)
    if job is None:
        return
    digest = job.dataset_sha256
    models = kept_models.models_of_jobs(session, [job_id])
    lock_storage_counts(session, [job.user_id])
    drop_working_data(session, job_id)
    stored = session.execute(select(*blob_gc.RESULT_KEYS).where(JobResult.job_id == job_id)).all()
    blob_gc.delete_after_commit(session, [key for row in stored for key in row])
    session.delete(job)
    session.flush()
    if digest is not None:
        release_upload(session, digest)
    for model in sorted(models):
        kept_models.release_model(session, model)


def still_running_on(session: Session, job_id: str, worker: str, *, attempt: int | None = None) -> bool:
    """True while the job is running and owned by `worker` (not cancelled, not reclaimed)."""
    found = session.scalar(select(Job.id).where(*held(job_id, worker, attempt)))
    return found is not None


def computation_stopped(
    session: Session, job_id: str, worker: str, *, attempt: int | None = None, worker_seconds: float = 0.0
) -> None:
    """The worker's computation of the job is over: a cancelled job no longer holds a worker, and the
    `worker_seconds` it took count in its user's recent use (fair share, `_fairest_claim`)."""
    mine = [Job.id == job_id, Job.worker == worker]
    if attempt is not None:
        mine.append(Job.attempts == attempt)
    session.execute(
        update(Job)
        .where(*mine)
        .values(stopping=False, worker_seconds=func.coalesce(Job.worker_seconds, 0.0) + worker_seconds)
    )


def computation_died(
    session: Session,
    job_id: str,
    worker: str,
    *,
    how: str,
    max_attempts: int,
    attempt: int | None = None,
    progress_message: str = "requeued: computation died",
) -> str:
    """The job's computation died by itself (the OOM killer, a crash in native code), or could not start
    on this machine: run it again on any worker (the sweep publishes it), unless it used up its attempts.
    Returns what was done."""
    mine = held(job_id, worker, attempt)
    attempts = session.scalar(select(Job.attempts).where(*mine))
    if attempts is None:
        return "no longer ours"
    if attempts >= max_attempts:
        fail(session, job_id, "worker_lost", worker_lost_message(attempts), worker=worker, attempt=attempt)
        return "failed"
    session.execute(
        update(Job)
        .where(*mine)
        .values(status=JobStatus.queued, dispatched_at=None, progress_message=progress_message)
    )
    add_event(session, job_id, "requeued", f"the computation {how}")
    return "requeued"
