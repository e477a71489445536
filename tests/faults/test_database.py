"""Postgres down: the API answers 503 with a JSON reason within seconds, /readyz names the database,
/healthz stays up, and everything recovers by itself when Postgres is back.

Runs a private Postgres cluster: the machine's shared one is never stopped.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import psycopg
import pytest

from tests.faults.conftest import (
    OwnPostgresStack,
    PostgresCluster,
    assert_finished_exactly_once,
    client_for,
    dsn,
)
from tests.stack import DATA, Stack
from tests.waiting import wait_until

pytestmark = [pytest.mark.service, pytest.mark.slow]

BOUND = httpx.Timeout(10.0)  # "no hang": any answer slower than this fails the request itself


def readyz(stack: Stack) -> httpx.Response:
    return httpx.get(f"{stack.url}/readyz", timeout=BOUND)


def test_api_answers_503_while_postgres_is_down_and_recovers(
    postgres_cluster: PostgresCluster, stacks: Callable[..., Stack]
) -> None:
    stack = stacks(OwnPostgresStack, admin_dsn=postgres_cluster.admin_dsn)
    stack.start_worker()
    stack.start_api()
    alice = client_for(stack)
    alice.http.timeout = BOUND
    before = alice.submit("gbdtclassification", "iris_dataset2.csv").json()["id"]
    assert alice.wait(before, timeout=120)["status"] == "succeeded"

    postgres_cluster.stop()
    for response in (
        alice.http.get(f"/jobs/{before}"),
        alice.http.get("/jobs"),
        alice.submit("gbdtclassification", (DATA / "iris_dataset2.csv").read_bytes()),
    ):
        assert response.status_code == 503, response.text
        assert "database" in response.json()["detail"].lower()
        assert response.headers.get("retry-after")
    down = readyz(stack)
    assert down.status_code == 503
    assert down.json()["checks"]["database"] != "ok"
    assert down.json()["checks"]["broker"] == "ok"
    assert httpx.get(f"{stack.url}/healthz", timeout=BOUND).status_code == 200

    postgres_cluster.start()
    wait_until(lambda: readyz(stack).status_code == 200, 60, "/readyz to answer 200 again")
    assert alice.http.get(f"/jobs/{before}").json()["status"] == "succeeded"
    after = alice.submit("gbdtclassification", "iris_dataset2.csv")
    assert after.status_code == 202, after.text
    assert alice.wait(after.json()["id"], timeout=120)["status"] == "succeeded"
    assert_finished_exactly_once(stack, [before, after.json()["id"]])


def dispatch_is_durable(stack: Stack, job_id: str) -> bool:
    """Whether the job is marked dispatched, flushed to disk: the mark is committed without waiting for
    the flush (the sweep would publish the job again if it were lost), so a durable commit is made here,
    which flushes everything before it. Otherwise stopping Postgres could undo the mark, and the sweep's
    new message would hide the lost one."""
    with psycopg.connect(dsn(stack)) as conn:
        row = conn.execute("SELECT dispatched_at IS NOT NULL FROM jobs WHERE id = %s", (job_id,)).fetchone()
        conn.execute("SET LOCAL synchronous_commit = on")
        conn.execute("SELECT txid_current()")  # a transaction id: the commit writes (and flushes) WAL
    return bool(row and row[0])


def test_a_job_whose_claim_finds_postgres_down_runs_once_it_is_back(
    postgres_cluster: PostgresCluster, stacks: Callable[..., Stack]
) -> None:
    """The job's message is its only wake-up once dispatched: a worker that takes it while Postgres is
    down must not drop it (Celery acks a failed task), but send it again until the claim goes through."""
    stack = stacks(OwnPostgresStack, admin_dsn=postgres_cluster.admin_dsn)
    stack.start_api()
    alice = client_for(stack)
    alice.http.timeout = BOUND
    job_id = alice.submit("gbdtclassification", "iris_dataset2.csv").json()["id"]  # queued, dispatched
    wait_until(lambda: dispatch_is_durable(stack, job_id), 30, "the job's dispatch to be on disk")

    assert stack.api is not None
    stack.api.terminate()  # no sweep while the message is out: none may publish the job again meanwhile
    stack.api.wait(15)
    postgres_cluster.stop()
    stack.start_worker()  # takes the message and finds no database at the claim
    worker_log = stack.tmp / "worker-0.log"

    def claim_failed() -> bool:  # Celery's own log lines: a retry, or a task failed for good
        log = worker_log.read_bytes()
        return b"Retry in" in log or b"raised unexpected" in log

    wait_until(claim_failed, 120, "the worker to meet no database at the claim")
    postgres_cluster.start()
    stack.start_api()
    assert alice.wait(job_id, timeout=60)["status"] == "succeeded"
    assert_finished_exactly_once(stack, [job_id])
