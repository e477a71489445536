"""Waiting for a job to finish (`wait=N` on a submit or on `GET /jobs/{id}`, the /techtonique mount):
woken by a notification, not a timer.

On Postgres one listener connection per API process LISTENs on shared/store/job_events.py's channel and wakes
the requests waiting for that job. Notifications are hints: a waiter reads the job row itself, once
registered (so a job that finished before is seen), at each wake-up, and every `FALLBACK_POLL_SECONDS`
(so a notification lost while the listener reconnects delays an answer, never loses it). When the listener
reconnects, every waiter checks its row again at once.

On SQLite (the embedded default) there is no LISTEN: waiters read the row every `SQLITE_POLL_SECONDS`
(a cheap local read), a little longer the longer they have waited (2% of it, at most 0.25 s), so many
long waits do not keep the database busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import psycopg
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select
from sqlalchemy.engine import make_url

from shared.db import read_scope
from shared.settings import get_settings
from shared.store.job_events import CHANNEL, parse_notification
from shared.store.jobstore import json_stored, open_result_parquet, result_body
from shared.tables import FINISHED, Job, JobResult, JobStatus

log = logging.getLogger("fitexplain.api")

FALLBACK_POLL_SECONDS = 1.0  # with a live listener: only a safety net
UNLISTENED_POLL_SECONDS = 0.1  # while the listener is down (reconnecting)
SQLITE_POLL_SECONDS = 0.02
SQLITE_POLL_GROWTH = 0.02  # of the time already waited
SQLITE_POLL_MAX_SECONDS = 0.25
RECONNECT_SECONDS = (0.1, 5.0)  # first and largest delay between reconnection attempts

Finished = tuple[Job | None, bytes | IO[bytes] | None]
"""The job and its result body (gzip JSON), or the open stream of its Parquet form when it is kept only as
Parquet; no job when the body came with the job's notification."""


@dataclass(frozen=True)
class Expected:
    """A registered wait for a job: `woken` is set by its notifications; `listened`: the listener was live
    when it was registered."""

    job_id: str
    woken: asyncio.Event
    listened: bool


def finished_job(job_id: str, with_body: bool = True) -> Finished | None:
    """The job and its result body (None for a failed or cancelled job, or unless `with_body`), once it
    is finished."""
    with read_scope() as session:
        if with_body:  # the result row comes with the job (one round trip): result_body finds it then
            with_result = select(Job, JobResult).outerjoin(JobResult, JobResult.job_id == Job.id)
            found = session.execute(with_result.where(Job.id == job_id)).first()
            job = found[0] if found is not None else None
        else:  # a status wait: the result row is not read at all
            job = session.get(Job, job_id)
        if job is None or job.status not in FINISHED:
            return None
        if not with_body or job.status != JobStatus.succeeded:
            return job, None
        if json_stored(session, job_id) is False:  # kept only as Parquet: its JSON is written from it
            return job, open_result_parquet(session, job_id)
        return job, result_body(session, job_id)


def job_waiter(app: FastAPI) -> JobWaiter:
    """The app's waiter (started by its lifespan); one without a listener when no lifespan ran."""
    waiter: JobWaiter | None = getattr(app.state, "job_waiter", None)
    if waiter is None:
        waiter = app.state.job_waiter = JobWaiter(get_settings().database_url)
    return waiter


class JobWaiter:
    """The waiting requests of one API process, and (on Postgres) the listener that wakes them."""

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url)
        self.postgres = url.get_backend_name() == "postgresql"
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._waiting: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._bodies: dict[str, bytes] = {}  # results that came with a waited-for job's notification
        self._listening = asyncio.Event()  # set while LISTEN is active on a live connection
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.postgres and self._task is None:
            self._task = asyncio.create_task(self._listen_forever(), name="job-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @contextlib.contextmanager
    def expecting(self, job_id: str) -> Iterator[Expected]:
        """Register a wait for `job_id` before it can finish (before its message is published), to `wait`
        for it inside this block: the first read of its row is skipped when the listener was live at
        registration, as its notification cannot come before."""
        expected = Expected(job_id, asyncio.Event(), self.listening)
        self._waiting[job_id].add(expected.woken)
        try:
            yield expected
        finally:
            events = self._waiting[job_id]
            events.discard(expected.woken)
            if not events:
                del self._waiting[job_id]
                self._bodies.pop(job_id, None)

    async def wait(
        self, job_id: str, seconds: float, *, with_body: bool = True, expected: Expected | None = None
    ) -> Finished | None:
        """The finished job (with its result body if `with_body`), or None when it is still unfinished
        after `seconds`. A succeeded job whose result came with its notification is `(None, body)`.
        `expected`: registered by `expecting` (else here, and the row is read first)."""
        if expected is None:
            with self.expecting(job_id) as registered:
                return await self._wait(registered, seconds, with_body, read_first=True)
        return await self._wait(expected, seconds, with_body, read_first=not expected.listened)

    async def _wait(
        self, expected: Expected, seconds: float, with_body: bool, read_first: bool
    ) -> Finished | None:
        job_id, woken = expected.job_id, expected.woken
        started = time.monotonic()
        deadline = started + seconds
        read = read_first
        while True:
            if read or woken.is_set():
                woken.clear()
                if with_body and (body := self._bodies.get(job_id)) is not None:
                    return None, body
                found = await run_in_threadpool(finished_job, job_id, with_body)
                if found is not None:
                    return found
            read = True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                poll = self._poll_seconds(time.monotonic() - started)
                await asyncio.wait_for(woken.wait(), min(poll, remaining))

    @property
    def listening(self) -> bool:
        """Whether LISTEN is active on a live connection now."""
        return self._listening.is_set()

    def _poll_seconds(self, waited: float) -> float:
        if not self.postgres:
            return min(SQLITE_POLL_SECONDS + SQLITE_POLL_GROWTH * waited, SQLITE_POLL_MAX_SECONDS)
        return FALLBACK_POLL_SECONDS if self._listening.is_set() else UNLISTENED_POLL_SECONDS

    def _wake(self, job_id: str | None = None, body: bytes | None = None) -> None:
        """Wake the waiters of `job_id` (giving them `body`, its result), or all of them."""
        if job_id is not None and body is not None and job_id in self._waiting:
            self._bodies[job_id] = body
        groups = [self._waiting.get(job_id, set())] if job_id else list(self._waiting.values())
        for events in groups:
            for event in events:
                event.set()

    async def _listen_forever(self) -> None:
        delay = RECONNECT_SECONDS[0]
        while True:
            try:
                # A connection that silently vanished (a network cut) is noticed by TCP within about
                # half a minute.
                async with await psycopg.AsyncConnection.connect(
                    self._dsn,
                    autocommit=True,
                    connect_timeout=3,
                    keepalives=1,
                    keepalives_idle=10,
                    keepalives_interval=5,
                    keepalives_count=3,
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self._listening.set()
                    self._wake()  # what finished while nobody listened is read now
                    delay = RECONNECT_SECONDS[0]
                    async for notification in conn.notifies():
                        self._wake(*parse_notification(notification.payload))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the connection dropped or Postgres is down: reconnect
                log.warning("job listener lost its connection (%s); reconnecting", exc)
            finally:
                self._listening.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_SECONDS[1])
