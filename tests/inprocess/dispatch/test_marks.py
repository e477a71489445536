"""The API's deferred dispatch marks (shared/dispatch/marks.py): written after their delay, all owed marks in
one transaction, at once when flushed, and a job deleted meanwhile is skipped without losing the others."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import delete

from shared.db import session_scope
from shared.dispatch.marks import DispatchMarks
from shared.tables import Job, utcnow
from tests.inprocess.factories import events, load_job, make_job, make_user


@pytest.fixture
def user_id() -> int:
    return make_user("alice")[0]


def dispatched_at(job_id: str) -> object:
    job = load_job(job_id)
    assert job is not None
    return job.dispatched_at


def test_marks_are_written_once_their_delay_is_over(user_id: int) -> None:
    jobs = [make_job(user_id), make_job(user_id)]
    published = utcnow()

    async def scenario() -> list[object]:
        marks = DispatchMarks(delay=0.3)
        for job_id in jobs:
            marks.add(job_id, published)
        unmarked = [await asyncio.to_thread(dispatched_at, job_id) for job_id in jobs]
        deadline = time.monotonic() + 30
        while await asyncio.to_thread(dispatched_at, jobs[-1]) is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return unmarked

    assert asyncio.run(scenario()) == [None, None]  # not before the delay
    for job_id in jobs:
        assert dispatched_at(job_id) == published  # when the message was sent, not when it was marked
        assert events(job_id) == ["submitted", "dispatched"]


def test_a_flush_writes_what_is_owed_and_skips_a_deleted_job(user_id: int) -> None:
    kept, deleted = make_job(user_id), make_job(user_id)
    with session_scope() as session:
        session.execute(delete(Job).where(Job.id == deleted))
    published = utcnow()

    async def scenario() -> None:
        marks = DispatchMarks(delay=3600)
        marks.add(deleted, published)
        marks.add(kept, published)
        await marks.flush()  # at shutdown: now, not in an hour

    asyncio.run(scenario())
    assert dispatched_at(kept) == published
    assert events(kept) == ["submitted", "dispatched"]
    assert load_job(deleted) is None
