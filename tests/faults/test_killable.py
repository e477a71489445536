"""A job's computation can be stopped wherever it is, native code included: cancelling a job while it
fits frees its worker within seconds, and a job that reaches its time limit inside a catboost fit ends
`time_limit` after one attempt, with the worker still up.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import psycopg
import pytest

from tests.faults.conftest import (
    START_TIMEOUT,
    assert_finished_exactly_once,
    client_for,
    dsn,
    job_row,
    slow_csv,
    start,
    worker_log,
)
from tests.stack import Client, Stack
from tests.waiting import wait_until

pytestmark = [pytest.mark.service, pytest.mark.slow]

TIME_LIMIT = 3
# A catboost fit that stays in native code for minutes here (one thread); it is always stopped early.
NATIVE_FIT = {"model_type": "catboost", "n_estimators": 1000, "max_depth": 10, "interpretability": "none"}


def fitting(client: Client, job_id: str) -> Callable[[], bool]:
    def check() -> bool:
        job = client.http.get(f"/jobs/{job_id}").json()
        return job["status"] == "running" and job["progress_message"] == "fitting"

    return check


def event_times(stack: Stack, job_id: str) -> dict[str, datetime]:
    with psycopg.connect(dsn(stack), connect_timeout=3) as conn:
        rows = conn.execute("SELECT event, at FROM job_events WHERE job_id = %s ORDER BY at", (job_id,))
        return {event: at for event, at in rows.fetchall()}


def still_stopping(stack: Stack, job_id: str) -> bool:
    with psycopg.connect(dsn(stack), connect_timeout=3) as conn:
        row = conn.execute("SELECT stopping FROM jobs WHERE id = %s", (job_id,)).fetchone()
    assert row is not None
    return bool(row[0])


def test_cancelling_a_job_in_native_code_frees_its_worker(stacks: Callable[..., Stack]) -> None:
    stack = stacks()
    (worker,) = start(stack)  # one process, one job at a time
    alice = client_for(stack)
    long = alice.submit("gbdtclassification", slow_csv(), **NATIVE_FIT).json()["id"]
    wait_until(fitting(alice, long), START_TIMEOUT, "the catboost fit to start")

    cancelled = alice.http.delete(f"/jobs/{long}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled", cancelled.text
    short = alice.submit("gbdtclassification", "iris_dataset2.csv").json()["id"]

    assert alice.wait(short, timeout=START_TIMEOUT)["status"] == "succeeded"
    assert worker.poll() is None, "the worker process must stay up"
    assert job_row(stack, short)["worker"] == job_row(stack, long)["worker"]  # the same pool process
    assert_finished_exactly_once(stack, [long, short])
    assert f"job {long} stopped" in worker_log(stack)
    # A cancel frees the worker: the next job starts within 5 s of it.
    freed_after = event_times(stack, short)["started"] - event_times(stack, long)["cancelled"]
    assert freed_after.total_seconds() < 5, freed_after


def test_time_limit_in_native_code_fails_the_job_once_and_keeps_the_worker(
    stacks: Callable[..., Stack],
) -> None:
    stack = stacks(
        extra_env={
            "FITEXPLAIN_SOFT_TIME_LIMIT": str(TIME_LIMIT),
            "FITEXPLAIN_HARD_TIME_LIMIT": str(2 * TIME_LIMIT),
            "FITEXPLAIN_VISIBILITY_TIMEOUT": str(4 * TIME_LIMIT),
        }
    )
    (worker,) = start(stack)
    alice = client_for(stack)
    long = alice.submit("gbdtclassification", slow_csv(), **NATIVE_FIT).json()["id"]

    job = alice.wait(long, timeout=START_TIMEOUT)
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "time_limit", job
    assert f"{TIME_LIMIT} s" in job["error"]["message"]
    assert "FITEXPLAIN_SOFT_TIME_LIMIT" in job["error"]["message"]
    assert job["attempts"] == 1, job

    # The worker is still up, in the same pool process, and takes the next job.
    short = alice.submit("gbdtclassification", "iris_dataset2.csv").json()["id"]
    assert alice.wait(short, timeout=START_TIMEOUT)["status"] == "succeeded"
    assert worker.poll() is None
    assert job_row(stack, short)["worker"] == job_row(stack, long)["worker"]
    history = assert_finished_exactly_once(stack, [long, short])[long]
    assert history.count("started") == 1 and "requeued" not in history, history
    assert "WorkerLostError" not in worker_log(stack)


def test_a_cancelled_job_counts_against_the_running_limit_until_its_worker_is_free(
    stacks: Callable[..., Stack],
) -> None:
    # The worker asks about cancellation only every 60 s here: a wide, certain window in which the
    # cancelled job's computation is still running.
    stack = stacks(
        extra_env={"FITEXPLAIN_MAX_RUNNING_JOBS_PER_USER": "1", "FITEXPLAIN_CANCEL_POLL_SECONDS": "60"}
    )
    start(stack)
    alice = client_for(stack)
    long = alice.submit("gbdtclassification", slow_csv(), **NATIVE_FIT).json()["id"]
    wait_until(fitting(alice, long), START_TIMEOUT, "the catboost fit to start")

    assert alice.http.delete(f"/jobs/{long}").json()["status"] == "cancelled"
    refused = alice.submit("gbdtclassification", "iris_dataset2.csv")
    assert refused.status_code == 429, refused.text
    assert "FITEXPLAIN_MAX_RUNNING_JOBS_PER_USER" in refused.json()["detail"]
    assert alice.http.delete(f"/jobs/{long}").status_code == 409  # not deleted while still stopping

    wait_until(lambda: not still_stopping(stack, long), 120, "the worker to stop the computation")
    accepted = alice.submit("gbdtclassification", "iris_dataset2.csv")
    assert accepted.status_code == 202, accepted.text
    assert alice.wait(accepted.json()["id"], timeout=START_TIMEOUT)["status"] == "succeeded"
    assert alice.http.delete(f"/jobs/{long}").status_code == 204
