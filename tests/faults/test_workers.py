"""Workers that die or are told to stop: a killed worker's job runs again elsewhere, exactly once; a job
that kills every worker stops after the attempts limit; a cancelled job stops and stays cancelled.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import pytest

from tests.faults.conftest import (
    SHORT_LEASE,
    START_TIMEOUT,
    assert_finished_exactly_once,
    client_for,
    job_events,
    job_row,
    running_attempt,
    start,
    start_slow_job,
    worker_log,
)
from tests.stack import Stack
from tests.waiting import wait_until

pytestmark = [pytest.mark.service, pytest.mark.slow]


def kill_worker_running(stack: Stack, row: dict[str, object]) -> None:
    """SIGKILL the worker (its process group) whose pool process runs the job of `row`."""
    group = os.getpgid(int(str(row["worker"]).rsplit(":", 1)[1]))
    stack.stop_worker(next(proc for proc in stack.workers if proc.pid == group), signal.SIGKILL)


def test_job_of_a_killed_worker_finishes_on_another(stacks: Callable[..., Stack]) -> None:
    stack = stacks(extra_env=SHORT_LEASE)
    start(stack, workers=2)
    alice = client_for(stack)
    job_id, row = start_slow_job(stack, alice)

    kill_worker_running(stack, row)

    job = alice.wait(job_id, timeout=180)
    assert job["status"] == "succeeded", job
    assert job_row(stack, job_id)["attempts"] == 2
    history = assert_finished_exactly_once(stack, [job_id])[job_id]
    assert history.count("started") == 2 and "requeued" in history, history
    assert alice.result(job_id)["y_pred"]


def test_job_that_kills_every_worker_fails_after_the_attempts_limit(stacks: Callable[..., Stack]) -> None:
    """Two attempts, each on a worker killed under it; the third worker, alive throughout, never runs it."""
    stack = stacks(extra_env={**SHORT_LEASE, "FITEXPLAIN_MAX_ATTEMPTS": "2"})
    start(stack, workers=3)
    alice = client_for(stack)
    job_id, row = start_slow_job(stack, alice)

    kill_worker_running(stack, row)
    row = wait_until(running_attempt(stack, job_id, 2), START_TIMEOUT, "attempt 2")
    kill_worker_running(stack, row)

    job = alice.wait(job_id, timeout=START_TIMEOUT)
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "worker_lost", job
    assert job_row(stack, job_id)["attempts"] == 2
    history = assert_finished_exactly_once(stack, [job_id])[job_id]
    assert history.count("started") == 2, history


def test_cancelled_running_job_stops_and_stays_cancelled(stacks: Callable[..., Stack]) -> None:
    stack = stacks()
    start(stack)
    alice = client_for(stack)
    job_id, _ = start_slow_job(stack, alice)

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
