"""Per-user submission limits (shared/limits.py), counted in the database."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import update

from shared.db import session_scope
from shared.limits import (
    REJECTED_BYTES_PER_UNIT,
    RateLimited,
    charge_rejected_upload,
    check_rejected_uploads,
    check_submission_limits,
    enforce_submission_limits,
    rejected_upload_cost,
    reserve_submission,
)
from shared.settings import Settings
from shared.tables import UploadRejections
from tests.inprocess.factories import ago, insert_job, make_job, make_user, set_job


@pytest.fixture
def limited(service_settings: Settings) -> Settings:
    tighter = {"max_running_jobs_per_user": 2, "max_submissions_per_minute": 3}
    return service_settings.model_copy(update=tighter)


def check(user_id: int, settings: Settings) -> None:
    with session_scope() as session:
        check_submission_limits(session, user_id, settings)


def test_unfinished_jobs_count_up_to_the_limit(limited: Settings) -> None:
    user_id = make_user("alice")[0]
    make_job(user_id)
    check(user_id, limited)
    running = make_job(user_id)
    set_job(running, status="running")
    with pytest.raises(RateLimited) as refused:
        check(user_id, limited)
    assert refused.value.retry_after == 5
    assert "2 unfinished jobs; the limit is 2 (FITEXPLAIN_MAX_RUNNING_JOBS_PER_USER)" in refused.value.message


@pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled"])
def test_finished_jobs_do_not_count_as_unfinished(limited: Settings, status: str) -> None:
    user_id = make_user("alice")[0]
    make_job(user_id)
    set_job(make_job(user_id), status=status)
    check(user_id, limited)


def test_a_cancelled_job_still_being_killed_counts_until_its_worker_goes_silent(limited: Settings) -> None:
    """Cancelled jobs whose computation is still being stopped hold a worker, unless their worker's
    heartbeat is older than FITEXPLAIN_STALE_AFTER_SECONDS (both compared in SQL, with bound times)."""
    user_id = make_user("alice")[0]
    make_job(user_id)
    stopping = make_job(user_id)
    set_job(stopping, status="cancelled", stopping=True, heartbeat_at=ago(1))
    with pytest.raises(RateLimited):
        check(user_id, limited)
    set_job(stopping, heartbeat_at=ago(limited.stale_after_seconds + 5))
    check(user_id, limited)


def test_another_users_jobs_do_not_count(limited: Settings) -> None:
    alice, bob = make_user("alice")[0], make_user("bob")[0]
    for _ in range(3):
        make_job(bob)
    check(alice, limited)
    with pytest.raises(RateLimited):
        check(bob, limited)


def test_submissions_per_minute_count_finished_jobs_of_the_last_minute(limited: Settings) -> None:
    user_id = make_user("alice")[0]
    jobs = [make_job(user_id) for _ in range(3)]
    for job_id in jobs:
        set_job(job_id, status="succeeded")
    with pytest.raises(RateLimited) as refused:
        check(user_id, limited)
    assert refused.value.retry_after == 60
    assert "3 jobs in the last minute; the limit is 3" in refused.value.message
    assert "FITEXPLAIN_MAX_SUBMISSIONS_PER_MINUTE" in refused.value.message
    set_job(jobs[0], created_at=ago(61))
    check(user_id, limited)


def test_the_early_check_and_the_reservation_apply_the_same_limits(limited: Settings) -> None:
    user_id = make_user("alice")[0]
    make_job(user_id)
    with session_scope() as session:
        enforce_submission_limits(session, user_id, limited)
        reserve_submission(session, user_id, limited)
    make_job(user_id)
    with pytest.raises(RateLimited), session_scope() as session:
        enforce_submission_limits(session, user_id, limited)
    with pytest.raises(RateLimited), session_scope() as session:
        reserve_submission(session, user_id, limited)


def test_simultaneous_submissions_cannot_overshoot_the_limit(limited: Settings) -> None:
    """Six submissions of one user at once, each checking and inserting in one transaction: the user's
    row lock queues them, so exactly the limit's worth get in."""
    user_id = make_user("alice")[0]
    start = threading.Barrier(6)

    def submit(_: int) -> bool:
        start.wait()
        try:
            with session_scope() as session:
                reserve_submission(session, user_id, limited)
                insert_job(session, user_id)
        except RateLimited:
            return False
        return True

    with ThreadPoolExecutor(6) as pool:
        accepted = list(pool.map(submit, range(6)))
    assert accepted.count(True) == limited.max_running_jobs_per_user


def level_after(user_id: int, settings: Settings, cost: float, seconds_ago: float = 0.0) -> None:
    """Charge a refused upload of `cost`, then date the bucket `seconds_ago` back."""
    with session_scope() as session:
        charge_rejected_upload(session, user_id, cost, settings)
        session.execute(
            update(UploadRejections)
            .where(UploadRejections.user_id == user_id)
            .values(at=time.time() - seconds_ago)
        )


def check_rejected(user_id: int, settings: Settings) -> None:
    with session_scope() as session:
        check_rejected_uploads(session, user_id, settings)


def test_refused_uploads_count_their_work_up_to_the_budget(service_settings: Settings) -> None:
    budget = service_settings.model_copy(update={"max_rejected_uploads_per_minute": 6})
    user_id = make_user("alice")[0]
    check_rejected(user_id, budget)  # no refusal yet
    level_after(user_id, budget, rejected_upload_cost(0))
    level_after(user_id, budget, rejected_upload_cost(4 * REJECTED_BYTES_PER_UNIT))  # 1 + 4 units
    check_rejected(user_id, budget)  # 6 units less what drained since: under the budget
    level_after(user_id, budget, rejected_upload_cost(0))
    with pytest.raises(RateLimited) as refused:
        check_rejected(user_id, budget)
    assert "FITEXPLAIN_MAX_REJECTED_UPLOADS_PER_MINUTE" in refused.value.message
    assert 1 <= refused.value.retry_after <= 11  # 7 units at 6 a minute: back under 6 within 10 s


def test_the_rejected_upload_budget_drains_at_its_rate(service_settings: Settings) -> None:
    budget = service_settings.model_copy(update={"max_rejected_uploads_per_minute": 6})
    user_id = make_user("alice")[0]
    level_after(user_id, budget, 12.0, seconds_ago=30)  # 12 units 30 s ago: 9 left
    with pytest.raises(RateLimited) as refused:
        check_rejected(user_id, budget)
    assert refused.value.retry_after in (30, 31)  # 9 - 6 units at 0.1 a second (less the test's own time)
    level_after(user_id, budget, 0.0, seconds_ago=61)  # drained, and dated back past the last 30 s
    check_rejected(user_id, budget)
    other = make_user("bob")[0]
    check_rejected(other, budget)  # another user's bucket is their own
