"""Postgres down: the API answers 503 with a JSON reason within seconds, /readyz names the database,
/healthz stays up, and everything recovers by itself when Postgres is back.

Runs a private Postgres cluster: the machine's shared one is never stopped.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.faults.conftest import (
    OwnPostgresStack,
    PostgresCluster,
    assert_finished_exactly_once,
    client_for,
    wait_until,
)
from tests.stack import DATA, Stack

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
