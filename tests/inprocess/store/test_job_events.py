"""A finished job is announced on commit only; a waiting request ends even when the announcement is lost."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import psycopg
import pytest
from sqlalchemy import text

from api.waiting import Finished, JobWaiter
from shared.db import get_engine, session_scope
from shared.settings import Settings
from shared.store import jobstore
from shared.store.job_events import BODY_IN_NOTIFICATION_MAX_BYTES, CHANNEL, parse_notification
from shared.tables import JobStatus
from tests.inprocess.factories import make_job, make_user


@pytest.fixture
def job_id() -> str:
    return make_job(make_user("alice")[0])


@pytest.fixture
def listener(service_settings: Settings) -> psycopg.Connection:
    dsn = service_settings.database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"LISTEN {CHANNEL}")
        yield conn


def heard(conn: psycopg.Connection) -> list[str]:
    """The payloads delivered so far (a notification of a commit arrives before the commit returns)."""
    return [n.payload for n in conn.notifies(timeout=0.2)]


@pytest.mark.parametrize("transition", ["fail", "cancel"])
def test_a_finished_job_is_announced_only_when_its_transaction_commits(
    listener: psycopg.Connection, job_id: str, transition: str
) -> None:
    finish = {
        "fail": lambda session: jobstore.fail(session, job_id, "bad_input", "no"),
        "cancel": lambda session: jobstore.cancel(session, job_id),
    }[transition]
    with pytest.raises(RuntimeError), session_scope() as session:
        assert finish(session)
        raise RuntimeError("rolled back")
    assert heard(listener) == []

    with session_scope() as session:
        assert finish(session)
    assert heard(listener) == [job_id]


def succeed(job_id: str, result: dict[str, object]) -> bytes:
    """Claim and succeed the job with `result`; its stored gzip body."""
    with session_scope() as session:
        jobstore.claim(session, job_id, worker="w1", stale_after=300, max_attempts=3)
    with session_scope() as session:
        assert jobstore.succeed(session, job_id, "w1", result)
    with session_scope() as session:
        body = jobstore.result_body(session, job_id)
    assert body is not None
    return body


def large_result() -> dict[str, object]:
    """A result whose gzip body is too large for a notification (random digits do not compress)."""
    return {"y_pred": [random.random() for _ in range(2_000)]}


def test_success_is_announced_on_commit_with_a_small_result(
    listener: psycopg.Connection, job_id: str
) -> None:
    stored = succeed(job_id, {"y_pred": [1]})
    [payload] = heard(listener)
    assert parse_notification(payload) == (job_id, stored)


def test_a_large_result_is_announced_without_it(listener: psycopg.Connection, job_id: str) -> None:
    stored = succeed(job_id, large_result())
    assert len(stored) > BODY_IN_NOTIFICATION_MAX_BYTES
    assert heard(listener) == [job_id]


def test_a_job_that_does_not_finish_is_not_announced(listener: psycopg.Connection, job_id: str) -> None:
    with session_scope() as session:
        jobstore.claim(session, job_id, worker="w1", stale_after=300, max_attempts=3)
        jobstore.heartbeat(session, job_id, "w1", 0.5, "fitting")
    assert heard(listener) == []


def fail(job_id: str) -> None:
    with session_scope() as session:
        jobstore.fail(session, job_id, "bad_input", "no")


async def _listening_waiter(database_url: str) -> JobWaiter:
    """A started JobWaiter once its listener is connected (LISTEN active)."""
    waiter = JobWaiter(database_url)
    await waiter.start()
    for _ in range(3000):  # 30 s: a loaded machine connects slowly
        if waiter.listening:
            return waiter
        await asyncio.sleep(0.01)
    raise AssertionError("the waiter's listener did not connect")


def wait_while_finished(database_url: str, job_id: str, finish: Callable[[], object]) -> Finished | None:
    """What a JobWaiter's wait for `job_id` returns when `finish` runs (in a thread) once the waiter has
    read the unfinished row and sleeps."""

    async def scenario() -> Finished | None:
        waiter = await _listening_waiter(database_url)
        try:
            waiting = asyncio.create_task(waiter.wait(job_id, 30))
            await asyncio.sleep(0.3)  # the waiter reads the unfinished row (no signal says when) and sleeps
            await asyncio.to_thread(finish)
            return await waiting
        finally:
            await waiter.stop()

    return asyncio.run(scenario())


def _terminate_listeners() -> int:
    with get_engine().connect() as conn:
        return len(
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
                )
            ).all()
        )


def test_a_wait_ends_when_the_job_finishes(service_settings: Settings, job_id: str) -> None:
    found = wait_while_finished(service_settings.database_url, job_id, lambda: fail(job_id))
    assert found is not None and found[0].status == JobStatus.failed


def test_a_wait_ends_even_when_its_listener_is_killed_and_the_notification_lost(
    service_settings: Settings, job_id: str
) -> None:
    async def scenario() -> tuple[object, ...] | None:
        waiter = await _listening_waiter(service_settings.database_url)
        try:
            waiting = asyncio.create_task(waiter.wait(job_id, 30))
            await asyncio.sleep(0.3)  # the waiter reads the unfinished row (no signal says when) and sleeps
            assert await asyncio.to_thread(_terminate_listeners) == 1
            fail(job_id)  # finished while the listener reconnects: its NOTIFY is lost
            return await waiting
        finally:
            await waiter.stop()

    found = asyncio.run(scenario())
    assert found is not None and found[0].status == JobStatus.failed


@pytest.mark.parametrize("size", ["small", "large"])
def test_a_wait_gets_the_stored_result_from_the_notification_or_the_store(
    service_settings: Settings, job_id: str, size: str
) -> None:
    """A small result comes with the notification (no job row read back: the job is None), a large one
    is read back with its row; either is the stored body."""
    result = {"y_pred": [1, 2]} if size == "small" else large_result()
    found = wait_while_finished(service_settings.database_url, job_id, lambda: succeed(job_id, result))
    assert found is not None
    with session_scope() as session:
        stored = jobstore.result_body(session, job_id)
    job, body = found
    assert body == stored
    if size == "small":
        assert job is None
    else:
        assert job is not None and job.status == JobStatus.succeeded


def test_an_expected_job_finishing_before_its_wait_begins_is_not_missed(
    service_settings: Settings, job_id: str
) -> None:
    """A submit registers its wait before publishing the job: a notification that comes before the wait
    starts (here a failure, which carries no result) wakes it, with no row read first."""

    async def scenario() -> Finished | None:
        waiter = await _listening_waiter(service_settings.database_url)
        try:
            with waiter.expecting(job_id) as expected:
                await asyncio.to_thread(fail, job_id)
                await asyncio.sleep(0.2)  # the notification has arrived
                return await waiter.wait(job_id, 0.5, expected=expected)  # well within the 1 s fallback poll
        finally:
            await waiter.stop()

    found = asyncio.run(scenario())
    assert found is not None and found[0] is not None and found[0].status == JobStatus.failed


def test_an_expected_wait_reads_no_row_before_a_notification(service_settings: Settings, job_id: str) -> None:
    """The row of an expected job is not read until its notification, the fallback poll or the deadline:
    a job finished without a notification (written here behind the store's back) is seen only at the
    deadline (a read then would have answered at once, as the wait that was not registered in advance)."""
    with session_scope() as session:
        session.execute(text("UPDATE jobs SET status = 'failed' WHERE id = :id"), {"id": job_id})
    seconds = 0.4  # below the fallback poll's second

    async def scenario() -> tuple[Finished | None, float]:
        waiter = await _listening_waiter(service_settings.database_url)
        try:
            with waiter.expecting(job_id) as expected:
                started = time.monotonic()
                found = await waiter.wait(job_id, seconds, expected=expected)
                return found, time.monotonic() - started
        finally:
            await waiter.stop()

    found, waited = asyncio.run(scenario())
    assert found is not None and found[0] is not None and found[0].status == JobStatus.failed
    assert waited >= seconds


def test_a_result_for_a_job_no_longer_ours_is_not_announced(
    listener: psycopg.Connection, job_id: str
) -> None:
    """The notification rides on the UPDATE that finishes the job: none when it finds nothing to finish."""
    with session_scope() as session:
        jobstore.claim(session, job_id, worker="w1", stale_after=300, max_attempts=3)
    with session_scope() as session:
        assert jobstore.cancel(session, job_id)
    assert heard(listener) == [job_id]  # the cancel's
    with session_scope() as session:
        assert not jobstore.succeed(session, job_id, "w1", {"y_pred": [1]})
    assert heard(listener) == []
