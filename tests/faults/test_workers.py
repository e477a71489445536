"""Workers that die or are told to stop: a killed worker's job runs again elsewhere, exactly once; a job
that kills every worker stops after the attempts limit; a cancelled job stops and stays cancelled.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from tests.faults.conftest import (
    assert_finished_exactly_once,
    client_for,
    job_events,
    job_row,
    slow_csv,
    slow_params,
    worker_log,
)
from tests.stack import Stack
from tests.waiting import wait_until

pytestmark = [pytest.mark.service, pytest.mark.slow]

START_TIMEOUT = 120  # a cold worker imports the ML stack


def running_attempt(stack: Stack, job_id: str, attempt: int) -> Callable[[], bool]:
    def check() -> bool:
        row = job_row(stack, job_id)
        return row["status"] == "running" and row["attempts"] == attempt

    return check


def test_job_of_a_killed_worker_finishes_on_another(stacks: Callable[..., Stack]) -> None:
    stack = stacks()
    first = stack.start_worker()
    stack.start_api()
    alice = client_for(stack)
    response = alice.submit("gbdtclassification", slow_csv(), **slow_params())
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]

    wait_until(running_attempt(stack, job_id, 1), START_TIMEOUT, "the first attempt")
    stack.stop_worker(first, signal.SIGKILL)
    stack.start_worker()

    job = alice.wait(job_id, timeout=180)
    assert job["status"] == "succeeded", job
    assert job_row(stack, job_id)["attempts"] == 2
    history = assert_finished_exactly_once(stack, [job_id])[job_id]
    assert history.count("started") == 2 and "requeued" in history, history
    assert alice.result(job_id)["y_pred"]


def test_job_that_kills_every_worker_fails_after_the_attempts_limit(stacks: Callable[..., Stack]) -> None:
    stack = stacks(extra_env={"FITEXPLAIN_MAX_ATTEMPTS": "2"})
    stack.start_api()
    alice = client_for(stack)
    response = alice.submit("gbdtclassification", slow_csv(), **slow_params())
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]

    for attempt in (1, 2):
        worker = stack.start_worker()
        wait_until(running_attempt(stack, job_id, attempt), START_TIMEOUT, f"attempt {attempt}")
        stack.stop_worker(worker, signal.SIGKILL)
    stack.start_worker()

    job = alice.wait(job_id, timeout=START_TIMEOUT)
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "worker_lost", job
    assert job_row(stack, job_id)["attempts"] == 2
    history = assert_finished_exactly_once(stack, [job_id])[job_id]
    assert history.count("started") == 2, history


def test_cancelled_running_job_stops_and_stays_cancelled(stacks: Callable[..., Stack]) -> None:
    stack = stacks()
    stack.start_worker()
    stack.start_api()
    alice = client_for(stack)
    response = alice.submit("gbdtclassification", slow_csv(), **slow_params())
    job_id = response.json()["id"]
    wait_until(running_attempt(stack, job_id, 1), START_TIMEOUT, "the job to start")

    cancelled = alice.http.delete(f"/jobs/{job_id}")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    wait_until(lambda: f"job {job_id} stopped" in worker_log(stack), 120, "the worker to stop the job")

    # The worker is free again (one process, concurrency 1): a next job runs to the end.
    after = alice.submit("gbdtclassification", "iris_dataset2.csv")
    assert alice.wait(after.json()["id"], timeout=120)["status"] == "succeeded"
    assert job_row(stack, job_id)["status"] == "cancelled"
    assert_finished_exactly_once(stack, [job_id, after.json()["id"]])
    assert "succeeded" not in job_events(stack)[job_id]
