"""Every job transition of shared/store/jobstore.py, and the conditions that make each one safe to race."""

from __future__ import annotations

import gzip
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import numpy as np
import orjson
import pytest
from sqlalchemy import func, select

from shared.db import session_scope
from shared.store import jobstore
from shared.store.uploads import sha256_hex, store_upload
from shared.tables import Job, JobEvent, JobResult, JobStatus, Upload, utcnow
from tests.inprocess.factories import IRIS, ago, events, load_job, make_job, make_user, set_job

STALE = 300.0  # far from any time a slow machine takes between two statements
MAX_ATTEMPTS = 3


@pytest.fixture
def user_id() -> int:
    return make_user("alice")[0]


@pytest.fixture
def job_id(user_id: int) -> str:
    return make_job(user_id)


def claim(job_id: str, worker: str = "w1", max_attempts: int = MAX_ATTEMPTS) -> jobstore.Claim:
    with session_scope() as session:
        return jobstore.claim(session, job_id, worker=worker, stale_after=STALE, max_attempts=max_attempts)


def running(job_id: str, worker: str = "w1") -> str:
    outcome = claim(job_id, worker)
    assert outcome.reason == "claimed"
    return worker


# -- uploads and creation ----------------------------------------------------------------------------


def test_an_upload_is_stored_once_per_content() -> None:
    with session_scope() as session:
        store_upload(session, IRIS, sha256_hex(IRIS), 150, 5)
        store_upload(session, IRIS, sha256_hex(IRIS), 150, 5)
        store_upload(session, b"a,target\n1,0\n", sha256_hex(b"a,target\n1,0\n"), 1, 2)
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Upload)) == 2


def test_a_new_job_is_queued_undispatched_with_a_submitted_event(job_id: str) -> None:
    job = load_job(job_id)
    assert job is not None
    assert (job.status, job.attempts, job.progress, job.worker, job.dispatched_at) == (
        "queued",
        0,
        0.0,
        None,
        None,
    )
    assert job.created_at.tzinfo is not None
    assert events(job_id) == ["submitted"]


def test_mark_dispatched_records_when(job_id: str) -> None:
    with session_scope() as session:
        jobstore.mark_dispatched(session, [(job_id, utcnow())])
    job = load_job(job_id)
    assert job is not None and job.dispatched_at is not None


# -- claim --------------------------------------------------------------------------------------------


def test_claim_takes_a_queued_job(job_id: str) -> None:
    outcome = claim(job_id, "w1")
    assert outcome.reason == "claimed"
    assert outcome.job is not None and outcome.job.id == job_id
    job = load_job(job_id)
    assert job is not None
    assert (job.status, job.attempts, job.worker, job.progress_message) == ("running", 1, "w1", "starting")
    assert job.started_at is not None and job.heartbeat_at is not None
    assert events(job_id) == ["submitted", "started"]


def test_a_second_claim_of_a_live_job_is_refused(job_id: str) -> None:
    running(job_id, "w1")
    outcome = claim(job_id, "w2")
    assert (outcome.job, outcome.reason) == (None, "running elsewhere")
    job = load_job(job_id)
    assert job is not None and (job.worker, job.attempts) == ("w1", 1)


def test_of_simultaneous_claims_exactly_one_wins(job_id: str) -> None:
    """Eight workers claim the same message at once (a redelivery storm): one runs it."""
    start = threading.Barrier(8)

    def contender(index: int) -> str:
        start.wait()
        return claim(job_id, f"w{index}").reason

    with ThreadPoolExecutor(8) as pool:
        reasons = list(pool.map(contender, range(8)))
    assert sorted(reasons) == ["claimed"] + ["running elsewhere"] * 7
    job = load_job(job_id)
    assert job is not None and job.attempts == 1 and job.worker == f"w{reasons.index('claimed')}"
    assert events(job_id).count("started") == 1


@pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled"])
def test_a_finished_job_is_never_claimed_again(job_id: str, status: str) -> None:
    set_job(job_id, status=status)
    outcome = claim(job_id)
    assert (outcome.job, outcome.reason) == (None, f"already {status}")
    job = load_job(job_id)
    assert job is not None and (job.status, job.attempts) == (status, 0)


def test_claiming_a_job_that_does_not_exist_says_gone() -> None:
    assert claim("0" * 32).reason == "gone"


def test_a_running_job_with_a_stale_heartbeat_is_reclaimed(job_id: str) -> None:
    running(job_id, "w1")
    set_job(job_id, heartbeat_at=ago(STALE + 5))
    outcome = claim(job_id, "w2")
    assert outcome.reason == "claimed"
    job = load_job(job_id)
    assert job is not None and (job.status, job.worker, job.attempts) == ("running", "w2", 2)


def test_a_heartbeat_just_inside_the_limit_is_not_stale(job_id: str) -> None:
    running(job_id, "w1")
    set_job(job_id, heartbeat_at=ago(STALE - 60))
    assert claim(job_id, "w2").reason == "running elsewhere"


def test_a_stale_job_that_used_its_attempts_fails_as_worker_lost(job_id: str) -> None:
    running(job_id, "w1")
    set_job(job_id, attempts=MAX_ATTEMPTS, heartbeat_at=ago(STALE + 5))
    outcome = claim(job_id, "w2")
    assert (outcome.job, outcome.reason) == (None, "attempts exhausted")
    job = load_job(job_id)
    assert job is not None
    assert (job.status, job.error_code) == ("failed", "worker_lost")
    assert f"{MAX_ATTEMPTS} times" in (job.error_message or "")
    assert events(job_id)[-1] == "failed"


def test_a_live_job_that_used_its_attempts_is_left_to_its_worker(job_id: str) -> None:
    running(job_id, "w1")
    set_job(job_id, attempts=MAX_ATTEMPTS)
    assert claim(job_id, "w2").reason == "running elsewhere"
    job = load_job(job_id)
    assert job is not None and job.status == "running"


def test_a_queued_job_past_its_attempts_fails_instead_of_running(job_id: str) -> None:
    set_job(job_id, attempts=MAX_ATTEMPTS)
    assert claim(job_id).reason == "attempts exhausted"
    job = load_job(job_id)
    assert job is not None and (job.status, job.error_code) == ("failed", "worker_lost")


# -- heartbeat ----------------------------------------------------------------------------------------


def test_the_owner_heartbeat_records_progress_clamped_and_message_cut(job_id: str) -> None:
    running(job_id, "w1")
    before = ago(100)
    set_job(job_id, heartbeat_at=before)
    with session_scope() as session:
        assert jobstore.heartbeat(session, job_id, "w1", 1.7, "x" * 500)
    job = load_job(job_id)
    assert job is not None
    assert (job.progress, len(job.progress_message)) == (1.0, 200)
    assert job.heartbeat_at is not None and job.heartbeat_at >= before + timedelta(seconds=100)
    with session_scope() as session:
        assert jobstore.heartbeat(session, job_id, "w1", -0.5, None)
    job = load_job(job_id)
    assert job is not None and (job.progress, job.progress_message) == (0.0, "x" * 200)


def test_a_heartbeat_from_another_worker_or_after_cancel_is_refused(job_id: str) -> None:
    running(job_id, "w1")
    with session_scope() as session:
        assert not jobstore.heartbeat(session, job_id, "w2", 0.5, "not mine")
        jobstore.cancel(session, job_id)
    with session_scope() as session:
        assert not jobstore.heartbeat(session, job_id, "w1", 0.5, "cancelled under me")
    job = load_job(job_id)
    assert job is not None and (job.status, job.progress_message) == ("cancelled", "cancelled")


# -- succeed, fail, cancel ----------------------------------------------------------------------------


def test_succeed_stores_the_result_compressed(job_id: str) -> None:
    running(job_id, "w1")
    result = {"y_pred": np.array([1, 0, 2]), "accuracy": 0.9}
    with session_scope() as session:
        assert jobstore.succeed(session, job_id, "w1", result)
    job = load_job(job_id)
    assert job is not None
    assert (job.status, job.progress, job.progress_message) == ("succeeded", 1.0, "done")
    assert job.finished_at is not None
    with session_scope() as session:
        body = jobstore.result_body(session, job_id)
    assert body is not None
    assert orjson.loads(gzip.decompress(body)) == {"y_pred": [1, 0, 2], "accuracy": 0.9}
    assert events(job_id)[-1] == "succeeded"


def test_only_the_owner_can_succeed(job_id: str) -> None:
    running(job_id, "w1")
    with session_scope() as session:
        assert not jobstore.succeed(session, job_id, "w2", {"stolen": True})
    job = load_job(job_id)
    assert job is not None and job.status == "running"
    with session_scope() as session:
        assert session.get(JobResult, job_id) is None


def test_a_worker_that_lost_its_job_to_a_reclaim_cannot_succeed(job_id: str) -> None:
    running(job_id, "w1")
    set_job(job_id, heartbeat_at=ago(STALE + 5))
    running(job_id, "w2")
    with session_scope() as session:
        assert not jobstore.succeed(session, job_id, "w1", {"late": True})
        assert jobstore.succeed(session, job_id, "w2", {"on time": True})
    with session_scope() as session:
        body = jobstore.result_body(session, job_id)
    assert body is not None and orjson.loads(gzip.decompress(body)) == {"on time": True}


def test_a_worker_of_the_same_name_that_lost_its_attempt_can_no_longer_write_it(job_id: str) -> None:
    """The lease is fenced by the attempt: a process stopped past its heartbeat, whose job was requeued
    and claimed again under the same name (its own pool process, or a restart that got the same pid),
    cannot renew, succeed, fail, requeue or stop the new attempt."""
    running(job_id, "w1")
    set_job(job_id, heartbeat_at=ago(STALE + 5))
    with session_scope() as session:
        assert jobstore.requeue_stale(session, stale_after=STALE, max_attempts=MAX_ATTEMPTS)[0] == [job_id]
    running(job_id, "w1")  # attempt 2, same worker name
    with session_scope() as session:
        assert not jobstore.heartbeat(session, job_id, "w1", 0.9, "late", attempt=1)
        assert not jobstore.still_running_on(session, job_id, "w1", attempt=1)
        assert not jobstore.fail(session, job_id, "internal_error", "late", worker="w1", attempt=1)
        assert jobstore.computation_died(session, job_id, "w1", how="died", max_attempts=3, attempt=1) == (
            "no longer ours"
        )
        assert not jobstore.succeed(session, job_id, "w1", {"late": True}, attempt=1)
    job = load_job(job_id)
    assert job is not None and (job.status, job.attempts, job.progress_message) == ("running", 2, "starting")
    with session_scope() as session:
        assert jobstore.heartbeat(session, job_id, "w1", 0.5, "fitting", attempt=2)
        assert jobstore.succeed(session, job_id, "w1", {"on time": True}, attempt=2)
    with session_scope() as session:
        body = jobstore.result_body(session, job_id)
    assert body is not None and orjson.loads(gzip.decompress(body)) == {"on time": True}
    assert events(job_id) == ["submitted", "started", "requeued", "started", "succeeded"]


def test_the_worker_seconds_of_each_attempt_add_up(job_id: str) -> None:
    running(job_id, "w1")
    with session_scope() as session:
        jobstore.computation_stopped(session, job_id, "w1", attempt=1, worker_seconds=2.5)
        jobstore.computation_stopped(session, job_id, "w1", attempt=2, worker_seconds=99.0)  # not its own
        jobstore.computation_stopped(session, job_id, "w1", attempt=1, worker_seconds=1.5)
    job = load_job(job_id)
    assert job is not None and job.worker_seconds == 4.0


def test_a_cancelled_job_cannot_succeed(job_id: str) -> None:
    running(job_id, "w1")
    with session_scope() as session:
        assert jobstore.cancel(session, job_id)
    with session_scope() as session:
        assert not jobstore.succeed(session, job_id, "w1", {"late": True})
        assert jobstore.result_body(session, job_id) is None
    job = load_job(job_id)
    assert job is not None and job.status == "cancelled"


def test_fail_records_the_code_and_message(job_id: str) -> None:
    running(job_id, "w1")
    with session_scope() as session:
        assert jobstore.fail(session, job_id, "missing_value", "Column 'a' ...", worker="w1")
    job = load_job(job_id)
    assert job is not None
    assert (job.status, job.error_code, job.error_message) == ("failed", "missing_value", "Column 'a' ...")
    assert job.finished_at is not None
    assert events(job_id)[-1] == "failed"


def test_fail_by_another_worker_or_of_a_finished_job_changes_nothing(job_id: str) -> None:
    running(job_id, "w1")
    with session_scope() as session:
        assert not jobstore.fail(session, job_id, "internal_error", "not mine", worker="w2")
        assert jobstore.succeed(session, job_id, "w1", {})
    with session_scope() as session:
        assert not jobstore.fail(session, job_id, "worker_lost", "too late")
    job = load_job(job_id)
    assert job is not None and (job.status, job.error_code) == ("succeeded", None)


def test_fail_without_a_worker_fails_a_queued_job(job_id: str) -> None:
    with session_scope() as session:
        assert jobstore.fail(session, job_id, "worker_lost", "gone")
    job = load_job(job_id)
    assert job is not None and job.status == "failed"


@pytest.mark.parametrize("start_running", [False, True])
def test_cancel_stops_a_queued_or_running_job(job_id: str, start_running: bool) -> None:
    if start_running:
        running(job_id)
    with session_scope() as session:
        assert jobstore.cancel(session, job_id)
    job = load_job(job_id)
    assert job is not None and job.status == "cancelled" and job.finished_at is not None
    assert events(job_id)[-1] == "cancelled"


@pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled"])
def test_cancel_leaves_a_finished_job_alone(job_id: str, status: str) -> None:
    set_job(job_id, status=status)
    with session_scope() as session:
        assert not jobstore.cancel(session, job_id)
    job = load_job(job_id)
    assert job is not None and job.status == status
    assert "cancelled" not in events(job_id)


# -- stale workers and lost messages ------------------------------------------------------------------


def test_requeue_stale_requeues_lost_jobs_and_fails_exhausted_ones(user_id: int) -> None:
    lost, exhausted, alive, queued = (make_job(user_id) for _ in range(4))
    for job_id in (lost, exhausted, alive):
        running(job_id)
        set_job(job_id, dispatched_at=ago(100))
    set_job(lost, heartbeat_at=ago(STALE + 5))
    set_job(exhausted, heartbeat_at=ago(STALE + 5), attempts=MAX_ATTEMPTS)
    with session_scope() as session:
        requeued, failed = jobstore.requeue_stale(session, stale_after=STALE, max_attempts=MAX_ATTEMPTS)
    assert (requeued, failed) == ([lost], [exhausted])
    statuses = {job_id: load_job(job_id) for job_id in (lost, exhausted, alive, queued)}
    assert {job_id: job.status for job_id, job in statuses.items() if job} == {
        lost: "queued",
        exhausted: "failed",
        alive: "running",
        queued: "queued",
    }
    assert statuses[lost] is not None and statuses[lost].dispatched_at is None  # the sweep publishes it
    assert statuses[exhausted] is not None and statuses[exhausted].error_code == "worker_lost"
    assert events(lost)[-1] == "requeued"


def test_forget_dispatches_undispatches_every_queued_job_and_no_other(user_id: int) -> None:
    """A queued job still owed its dispatch mark (undispatched here) is forgotten too: the mark, when it
    comes, is for a message the broker lost."""
    dispatched, unmarked, started = (make_job(user_id) for _ in range(3))
    set_job(dispatched, dispatched_at=ago(5))
    set_job(started, dispatched_at=ago(5))
    running(started)
    with session_scope() as session:
        assert sorted(jobstore.forget_dispatches(session)) == sorted([dispatched, unmarked])
    job = load_job(dispatched)
    assert job is not None and job.dispatched_at is None
    started_job = load_job(started)
    assert started_job is not None and started_job.dispatched_at is not None
    assert events(dispatched)[-1] == events(unmarked)[-1] == "undispatched"
    assert "undispatched" not in events(started)


def test_undispatched_lists_old_enough_queued_jobs_oldest_first(user_id: int) -> None:
    older, old, fresh, dispatched, started = (make_job(user_id) for _ in range(5))
    set_job(older, created_at=ago(200))
    set_job(old, created_at=ago(100))
    set_job(dispatched, created_at=ago(300), dispatched_at=ago(300))
    set_job(started, created_at=ago(300))
    running(started)
    with session_scope() as session:
        assert jobstore.undispatched(session, older_than=50) == [(older, "small"), (old, "small")]
        assert jobstore.undispatched(session, older_than=50, limit=1) == [(older, "small")]
        assert [job_id for job_id, _ in jobstore.undispatched(session)] == [older, old, fresh]


# -- deletion -----------------------------------------------------------------------------------------


def test_delete_job_removes_its_result_events_and_unshared_upload(user_id: int) -> None:
    job_id = make_job(user_id)
    running(job_id)
    with session_scope() as session:
        jobstore.succeed(session, job_id, "w1", {"ok": 1})
    with session_scope() as session:
        jobstore.delete_job(session, job_id)
    with session_scope() as session:
        assert session.get(Job, job_id) is None
        assert session.get(JobResult, job_id) is None
        assert session.scalar(select(func.count()).select_from(JobEvent)) == 0
        assert session.get(Upload, sha256_hex(IRIS)) is None


def test_delete_job_keeps_an_upload_another_job_uses(user_id: int) -> None:
    first, second = make_job(user_id), make_job(user_id)
    with session_scope() as session:
        jobstore.delete_job(session, first)
        jobstore.delete_job(session, "0" * 32)  # unknown: nothing to do
    with session_scope() as session:
        assert session.get(Upload, sha256_hex(IRIS)) is not None
        assert session.get(Job, second) is not None
        assert [job.status for job in session.scalars(select(Job))] == [JobStatus.queued]
