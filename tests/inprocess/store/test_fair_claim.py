"""A message wakes its queue: the worker claims the queued job whose user used the least worker time
recently (running jobs, and jobs finished within the window), the oldest among equals, only from the
message's queue; with nothing queued, the message's own job."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker

from shared.store.jobstore import Claim, claim_next
from shared.tables import Job, JobEvent, JobStatus, utcnow
from tests.inprocess.factories import Jobs

MAX_ATTEMPTS = 3


WINDOW = 600.0


def take(sessions: sessionmaker[Session], message_job_id: str, worker: str = "w:1") -> Claim:
    with sessions.begin() as session:
        return claim_next(
            session,
            message_job_id,
            worker=worker,
            stale_after=60,
            max_attempts=MAX_ATTEMPTS,
            recent_use_seconds=WINDOW,
        )


def claimed_id(claim: Claim) -> str | None:
    return claim.job.id if claim.job is not None else None


def test_a_claim_comes_with_its_upload_and_records_its_start(jobs: Jobs) -> None:
    """On Postgres the claim, its event and the upload's row are one statement: the same as SQLite's three."""
    job_id = jobs.job(jobs.user("alice"))
    claimed = take(jobs.sessions, job_id, worker="host:42")
    assert claimed.job is not None and claimed.job.id == job_id and claimed.job.status == JobStatus.running
    assert claimed.job.attempts == 1 and claimed.job.worker == "host:42"
    assert claimed.upload is not None and claimed.upload.sha256 == claimed.job.dataset_sha256
    with jobs.sessions() as session:
        events = session.execute(
            select(JobEvent.event, JobEvent.detail, JobEvent.at)
            .where(JobEvent.job_id == job_id)
            .order_by(JobEvent.id)
        ).all()
    assert [(event, detail) for event, detail, _ in events] == [
        ("submitted", None),
        ("started", "attempt 1 on host:42"),
    ]
    assert events[1].at == claimed.job.started_at


def test_a_user_with_a_job_running_is_served_after_a_user_with_none(jobs: Jobs) -> None:
    alice, bob = jobs.user("alice"), jobs.user("bob")
    jobs.job(alice, status=JobStatus.running, age=30)
    alice_next = jobs.job(alice, age=20)  # older than bob's, but alice already has a worker
    bob_first = jobs.job(bob, age=10)

    first = take(jobs.sessions, alice_next)
    assert claimed_id(first) == bob_first
    assert jobs.row(bob_first).status == JobStatus.running and jobs.row(alice_next).status == JobStatus.queued
    # now both have one running: the oldest queued job is next
    assert claimed_id(take(jobs.sessions, bob_first)) == alice_next


def test_oldest_first_among_users_with_as_many_jobs_running(jobs: Jobs) -> None:
    alice, bob = jobs.user("alice"), jobs.user("bob")
    newer = jobs.job(bob, age=5)
    older = jobs.job(alice, age=50)
    assert claimed_id(take(jobs.sessions, newer)) == older
    assert claimed_id(take(jobs.sessions, older)) == newer


def test_fewest_running_first_not_just_none_or_some(jobs: Jobs) -> None:
    alice, bob, carol = jobs.user("alice"), jobs.user("bob"), jobs.user("carol")
    for _ in range(3):
        jobs.job(alice, status=JobStatus.running)
    jobs.job(bob, status=JobStatus.running)
    alice_queued = jobs.job(alice, age=30)
    bob_queued = jobs.job(bob, age=20)
    carol_queued = jobs.job(carol, age=10)
    order = [claimed_id(take(jobs.sessions, alice_queued, f"w:{i}")) for i in range(3)]
    assert order == [carol_queued, bob_queued, alice_queued]


def test_the_user_who_used_less_worker_time_recently_goes_first(jobs: Jobs) -> None:
    """Nobody runs anything now: arrival would put alice first; her recent use puts bob first."""
    alice, bob = jobs.user("alice"), jobs.user("bob")
    jobs.job(alice, status=JobStatus.succeeded, used=40.0, finished_age=30)
    jobs.job(bob, status=JobStatus.succeeded, used=5.0, finished_age=30)
    alice_queued = jobs.job(alice, age=20)
    bob_queued = jobs.job(bob, age=10)
    assert claimed_id(take(jobs.sessions, alice_queued)) == bob_queued
    assert claimed_id(take(jobs.sessions, alice_queued, "w:2")) == alice_queued


def test_use_older_than_the_window_no_longer_counts(jobs: Jobs) -> None:
    alice, bob = jobs.user("alice"), jobs.user("bob")
    jobs.job(alice, status=JobStatus.failed, used=1000.0, finished_age=WINDOW + 60)
    jobs.job(bob, status=JobStatus.cancelled, estimated=3.0, finished_age=WINDOW - 60)
    alice_queued = jobs.job(alice, age=20)
    jobs.job(bob, age=10)
    assert claimed_id(take(jobs.sessions, alice_queued)) == alice_queued


def test_a_short_job_queued_behind_a_long_stream_starts_when_the_running_job_ends(jobs: Jobs) -> None:
    """Alice runs one 8 s job with four more queued; bob then queues two tiny jobs: both of bob's start
    before alice's next (first come, first served would run all of alice's first)."""
    alice, bob = jobs.user("alice"), jobs.user("bob")
    jobs.job(alice, status=JobStatus.succeeded, used=8.0, finished_age=0, age=60)  # her first, just ended
    alices = [jobs.job(alice, estimated=8.0, age=50 - i) for i in range(4)]
    bobs = [jobs.job(bob, estimated=0.1, age=10 - i) for i in range(2)]
    order = [claimed_id(take(jobs.sessions, alices[0], f"w:{i}")) for i in range(6)]
    assert order == [*bobs, *alices]


def test_a_stream_of_submissions_does_not_starve_a_waiting_user(jobs: Jobs) -> None:
    """Bob used more than alice recently, so alice's stream goes first, but only until it has used
    more than he has: his waiting job is then next, although alice keeps submitting."""
    alice, bob = jobs.user("alice"), jobs.user("bob")
    jobs.job(alice, status=JobStatus.succeeded, used=5.0, finished_age=30)
    jobs.job(bob, status=JobStatus.succeeded, used=10.0, finished_age=30)
    bob_queued = jobs.job(bob, age=100)
    started = []
    for i in range(6):
        newest = jobs.job(alice, estimated=2.0, age=0)
        started.append(claimed_id(take(jobs.sessions, newest, f"w:{i}")))
        if started[-1] == bob_queued:
            break
    # alice's use: 5, then 7, 9, 11 with her running jobs; bob's 10 is then the least
    assert started[3] == bob_queued and bob_queued not in started[:3], started


def test_a_message_claims_only_jobs_of_its_own_queue(jobs: Jobs) -> None:
    alice, bob = jobs.user("alice"), jobs.user("bob")
    large = jobs.job(alice, queue="large", age=60)
    small = jobs.job(bob, queue="small", age=1)
    assert claimed_id(take(jobs.sessions, small)) == small
    # the small queue is empty now: a repeated small message runs nothing, the large job stays queued
    again = take(jobs.sessions, small)
    assert again.job is None and again.reason == "running elsewhere"
    assert jobs.row(large).status == JobStatus.queued
    assert claimed_id(take(jobs.sessions, large)) == large


def test_the_message_of_a_finished_job_still_wakes_its_queue(jobs: Jobs) -> None:
    alice = jobs.user("alice")
    finished = jobs.job(alice, status=JobStatus.succeeded, age=10)
    waiting = jobs.job(alice, age=5)
    assert claimed_id(take(jobs.sessions, finished)) == waiting
    nothing = take(jobs.sessions, finished)
    assert nothing.job is None and nothing.reason == "already succeeded"


def test_a_lost_job_is_taken_over_by_its_own_message_when_nothing_is_queued(jobs: Jobs) -> None:
    alice = jobs.user("alice")
    lost = jobs.job(alice, status=JobStatus.running)
    with jobs.sessions.begin() as session:
        session.execute(update(Job).where(Job.id == lost).values(heartbeat_at=utcnow() - timedelta(hours=1)))
    claim = take(jobs.sessions, lost, worker="w:2")
    assert claimed_id(claim) == lost
    row = jobs.row(lost)
    assert row.attempts == 2 and row.worker == "w:2"


def test_a_claim_records_the_start_once(jobs: Jobs) -> None:
    alice = jobs.user("alice")
    job_id = jobs.job(alice)
    claim = take(jobs.sessions, job_id)
    assert claim.job is not None and claim.job.attempts == 1 and claim.job.worker == "w:1"
    assert take(jobs.sessions, job_id).job is None


def test_concurrent_claims_on_postgres_take_different_jobs_without_waiting(
    jobs: Jobs, sessions: sessionmaker[Session]
) -> None:
    if sessions.kw["bind"].dialect.name != "postgresql":
        pytest.skip("SQLite has one writer: claims are serialised, not concurrent")
    alice, bob = jobs.user("alice"), jobs.user("bob")
    first, second = jobs.job(alice, age=20), jobs.job(bob, age=10)
    with sessions.begin() as holding:  # the first claim's transaction is still open (row locked)...
        mine = claim_next(holding, first, worker="w:1", stale_after=60, max_attempts=MAX_ATTEMPTS)
        with sessions.begin() as other:  # ...and a second worker skips it instead of waiting
            other.execute(text("SET LOCAL lock_timeout = '2s'"))  # waiting would fail the test
            theirs = claim_next(other, second, worker="w:2", stale_after=60, max_attempts=MAX_ATTEMPTS)
    assert {claimed_id(mine), claimed_id(theirs)} == {first, second}
