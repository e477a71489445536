"""A job's lease (`worker.tasks.job_heartbeat`) is renewed only while its computation can make progress:
with the computation process stopped (SIGSTOP) the beats write nothing, so the lease runs out as if the
worker were gone; continued, the computation's beats renew it again."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from shared.db import session_scope
from shared.settings import Settings
from shared.store.jobstore import claim
from shared.tables import Job, utcnow
from tests.inprocess.factories import Account, ago, load_job, make_job, set_job
from tests.waiting import wait_until
from worker.computation import KillableExecutor, Outcome, Progress

WORKER = "host:1"


def computes_for_a_minute(progress: Progress) -> str:
    time.sleep(60)
    return "done"


@pytest.fixture
def computing() -> Iterator[KillableExecutor]:
    """An executor whose child is busy with a long computation until the test ends."""
    executor = KillableExecutor()
    wanted = threading.Event()
    wanted.set()
    ended: list[Outcome] = []

    def supervise() -> None:
        ended.append(
            executor.run(
                computes_for_a_minute,
                time_limit=120,
                poll_seconds=0.05,
                still_wanted=wanted.is_set,
                on_progress=lambda fraction, message: None,
            )
        )

    supervisor = threading.Thread(target=supervise)
    supervisor.start()
    wait_until(lambda: executor.child_pid, 30, "the computation process")
    yield executor
    child = executor.child_pid
    if child is not None:
        os.kill(child, signal.SIGCONT)
    wanted.clear()
    supervisor.join(timeout=30)
    assert ended == [Outcome("cancelled", "no longer wanted")]
    executor.close()


def test_a_stopped_computation_is_seen_stopped_until_it_is_continued(computing: KillableExecutor) -> None:
    child = computing.child_pid
    assert child is not None
    assert not computing.stopped()
    os.kill(child, signal.SIGSTOP)
    wait_until(computing.stopped, 10, "the computation seen stopped")
    os.kill(child, signal.SIGCONT)
    wait_until(lambda: not computing.stopped(), 10, "the computation seen running again")


def test_the_lease_of_a_stopped_computation_is_not_renewed(
    alice: Account, service_settings: Settings, computing: KillableExecutor
) -> None:
    from worker.tasks import job_heartbeat  # imports the ML stack: only here

    job_id = make_job(alice.id)
    with session_scope() as session:
        claimed = claim(session, job_id, worker=WORKER, stale_after=6, max_attempts=3).job
        assert claimed is not None and claimed.attempts == 1
    set_job(job_id, heartbeat_at=ago(60))
    child = computing.child_pid
    assert child is not None
    os.kill(child, signal.SIGSTOP)
    wait_until(computing.stopped, 10, "the computation seen stopped")
    asked: list[bool] = []

    def stopped() -> bool:
        asked.append(computing.stopped())
        return asked[-1]

    with job_heartbeat(job_id, WORKER, 1, service_settings, stopped) as lease:
        wait_until(lambda: asked.count(True) >= 3, 30, "three beats while the computation is stopped")
        job = load_job(job_id)
        assert job is not None and job.heartbeat_at is not None
        assert job.heartbeat_at < utcnow() - timedelta(seconds=50), "renewed for a stopped computation"
        os.kill(child, signal.SIGCONT)
        renewed = wait_until(lambda: fresh_heartbeat(job_id), 30, "the lease renewed once continued")
        assert not lease.lost.is_set()
    assert renewed.attempts == 1 and renewed.status == "running"


def fresh_heartbeat(job_id: str) -> Job | None:
    job = load_job(job_id)
    assert job is not None and job.heartbeat_at is not None
    return job if job.heartbeat_at > utcnow() - timedelta(seconds=30) else None
