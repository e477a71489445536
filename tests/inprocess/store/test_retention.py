"""Retention (shared/store/retention.py): old finished jobs go with their results and unshared uploads."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from shared.db import session_scope
from shared.store.retention import purge_expired
from shared.store.uploads import sha256_hex
from shared.tables import Job, JobEvent, JobResult, Upload, utcnow
from tests.inprocess.factories import IRIS, ago, make_job, make_user, set_job

DAY = 86400.0
OTHER_CSV = b"a,b,target\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n"


@pytest.fixture
def user_id() -> int:
    return make_user("alice")[0]


def finished(user_id: int, days_ago: float, *, csv: bytes = IRIS, status: str = "succeeded") -> str:
    job_id = make_job(user_id, csv=csv)
    set_job(job_id, status=status, finished_at=ago(days_ago * DAY))
    if status == "succeeded":
        with session_scope() as session:
            key = f"results/{job_id}/never-written.json.gz"  # the row alone: retention counts rows
            session.add(JobResult(job_id=job_id, blob_key=key, size_bytes=0, stored_bytes=0))
    return job_id


def purge(days: float = 30) -> dict[str, int]:
    with session_scope() as session:
        return purge_expired(session, days)


def remaining_jobs() -> set[str]:
    with session_scope() as session:
        return set(session.scalars(select(Job.id)))


def count(table: type) -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def test_old_finished_jobs_go_with_results_events_and_uploads(user_id: int) -> None:
    old = finished(user_id, 31, csv=OTHER_CSV)
    old_failed = finished(user_id, 40, csv=OTHER_CSV, status="failed")
    recent = finished(user_id, 29)
    assert purge() == {"jobs": 2, "results": 1, "datasets": 1, "models": 0}
    assert remaining_jobs() == {recent}
    assert count(JobResult) == 1
    with session_scope() as session:
        assert session.get(Upload, sha256_hex(OTHER_CSV)) is None
        assert session.get(Upload, sha256_hex(IRIS)) is not None
        assert session.scalar(select(func.count()).where(JobEvent.job_id.in_([old, old_failed]))) == 0


def test_an_upload_still_used_by_a_kept_job_stays(user_id: int) -> None:
    finished(user_id, 31)
    kept = make_job(user_id)  # same content, still queued
    assert purge() == {"jobs": 1, "results": 1, "datasets": 0, "models": 0}
    assert remaining_jobs() == {kept}
    assert count(Upload) == 1


@pytest.mark.parametrize("status", ["queued", "running"])
def test_unfinished_jobs_are_never_purged_however_old(user_id: int, status: str) -> None:
    job_id = make_job(user_id)
    set_job(job_id, status=status, created_at=ago(400 * DAY))
    assert purge() == {"jobs": 0, "results": 0, "datasets": 0, "models": 0}
    assert remaining_jobs() == {job_id}


def test_a_finished_job_without_a_finish_time_ages_from_its_creation(user_id: int) -> None:
    job_id = make_job(user_id)
    set_job(job_id, status="cancelled", created_at=ago(31 * DAY))
    assert purge()["jobs"] == 1


def test_purging_twice_is_harmless_and_now_can_be_given(user_id: int) -> None:
    job_id = finished(user_id, 1)
    assert purge()["jobs"] == 0
    with session_scope() as session:
        assert purge_expired(session, 30, now=utcnow() + timedelta(days=30)) == {
            "jobs": 1,
            "results": 1,
            "datasets": 1,
            "models": 0,
        }
    assert purge() == {"jobs": 0, "results": 0, "datasets": 0, "models": 0}
    assert job_id not in remaining_jobs()
