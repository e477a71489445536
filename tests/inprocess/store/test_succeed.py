"""A job's success is one step: the job row, its result row and its event, or nothing when the job is no
longer the worker's (on Postgres in one statement, on SQLite in three: the same rows)."""

from __future__ import annotations

import gzip

import orjson
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from shared.store.jobstore import claim_next, result_body, succeed
from shared.tables import Job, JobEvent, JobResult, JobStatus
from tests.inprocess.factories import Jobs

RESULT = {"y_pred": [0, 1, 1], "accuracy": 2 / 3}


def claimed_job(jobs: Jobs, worker: str, user: str = "alice") -> str:
    job_id = jobs.job(jobs.user(user))
    with jobs.sessions.begin() as session:
        assert claim_next(session, job_id, worker=worker, stale_after=60, max_attempts=3).job is not None
    return job_id


def events(sessions: sessionmaker[Session], job_id: str) -> list[str]:
    with sessions() as session:
        return list(
            session.scalars(select(JobEvent.event).where(JobEvent.job_id == job_id).order_by(JobEvent.id))
        )


def test_success_writes_the_job_its_result_and_its_event(jobs: Jobs) -> None:
    job_id = claimed_job(jobs, "w:1")
    with jobs.sessions.begin() as session:
        assert succeed(session, job_id, "w:1", RESULT)
    job = jobs.row(job_id)
    assert job.status == JobStatus.succeeded and job.progress == 1.0 and job.progress_message == "done"
    assert (job.score_name, job.score_value) == ("accuracy", RESULT["accuracy"])
    with jobs.sessions() as session:
        row = session.get(JobResult, job_id)
        assert row is not None and row.created_at == job.finished_at
        assert row.size_bytes == len(orjson.dumps(RESULT)) and row.parquet_key is None
        body = result_body(session, job_id)
        assert (
            body is not None
            and orjson.loads(gzip.decompress(body)) == RESULT
            and row.stored_bytes == len(body)
        )
    assert events(jobs.sessions, job_id) == ["submitted", "started", "succeeded"]


def test_a_result_for_a_job_no_longer_ours_writes_nothing(jobs: Jobs) -> None:
    job_id = claimed_job(jobs, "w:1")
    with jobs.sessions.begin() as session:  # taken over by another worker meanwhile
        session.execute(update(Job).where(Job.id == job_id).values(worker="w:2"))
    with jobs.sessions.begin() as session:
        assert not succeed(session, job_id, "w:1", RESULT)
    assert jobs.row(job_id).status == JobStatus.running
    with jobs.sessions() as session:
        assert session.get(JobResult, job_id) is None
    assert events(jobs.sessions, job_id) == ["submitted", "started"]


def test_a_regression_result_scores_its_rmse_and_a_result_without_metrics_none(jobs: Jobs) -> None:
    regression = {"y_pred": [1.5], "Score": {"R² Score": None, "RMSE (Root Mean Squared Error)": 0.25}}
    scored, unscored = claimed_job(jobs, "w:1"), claimed_job(jobs, "w:2", user="bob")
    with jobs.sessions.begin() as session:
        assert succeed(session, scored, "w:1", regression)
        assert succeed(session, unscored, "w:2", {"y_pred": [1.5]})
    assert (jobs.row(scored).score_name, jobs.row(scored).score_value) == ("rmse", 0.25)
    assert (jobs.row(unscored).score_name, jobs.row(unscored).score_value) == (None, None)
