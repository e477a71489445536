"""The workers table under a kill -9: the killed process's row stops beating, /readyz and /metrics count
it out once its heartbeat is stale, its row ages out, and its replacement registers and counts its job."""

from __future__ import annotations

import signal
from typing import Any

import httpx
import psycopg
import pytest

from tests.faults.conftest import (
    SHORT_LEASE,
    START_TIMEOUT,
    alive,
    client_for,
    dsn,
    slow_csv,
    slow_params,
    start,
)
from tests.stack import Stack
from tests.waiting import wait_until

pytestmark = [pytest.mark.service, pytest.mark.slow]


def worker_rows(stack: Stack) -> dict[str, dict[str, Any]]:
    with psycopg.connect(dsn(stack), connect_timeout=3) as conn:
        rows = conn.execute("SELECT name, pid, current_job, jobs_done, jobs_failed FROM workers").fetchall()
    return {
        name: {"pid": pid, "current_job": job, "jobs_done": done, "jobs_failed": failed}
        for name, pid, job, done, failed in rows
    }


def metric_alive(stack: Stack) -> float:
    line = next(
        line
        for line in httpx.get(f"{stack.url}/metrics", timeout=10).text.splitlines()
        if line.startswith("fitexplain_workers_alive ")
    )
    return float(line.split()[1])


def test_a_killed_workers_row_is_counted_out_and_ages_out(stacks: Any) -> None:
    stack: Stack = stacks(extra_env={**SHORT_LEASE, "FITEXPLAIN_WORKER_FORGET_SECONDS": "5"})
    (first,) = start(stack)
    alice = client_for(stack)
    job_id = alice.submit("gbdtclassification", slow_csv(), **slow_params()).json()["id"]
    (killed,) = wait_until(
        lambda: [name for name, row in worker_rows(stack).items() if row["current_job"] == job_id],
        START_TIMEOUT,
        "the worker row to show the job",
    )

    stack.stop_worker(first, signal.SIGKILL)
    wait_until(lambda: alive(stack) == 0, 30, "the killed worker to be counted out")
    assert metric_alive(stack) == 0
    readiness = httpx.get(f"{stack.url}/readyz", timeout=10)
    assert readiness.status_code == 200 and readiness.json()["notes"]

    stack.start_worker()
    assert alice.wait(job_id, timeout=180)["status"] == "succeeded"
    wait_until(lambda: killed not in worker_rows(stack), 60, "the killed worker's row to age out")
    (replacement,) = worker_rows(stack).values()
    assert replacement["jobs_done"] == 1 and replacement["current_job"] is None
    assert alive(stack) == 1
