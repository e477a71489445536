"""`wait=N` answers with the result even when the API's notification listener keeps losing its connection."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import psycopg

from tests.contract import explanation
from tests.databases import PG_ADMIN_DSN
from tests.stack import Client, Stack


def terminate_listeners(database: str) -> int:
    """Kill the API's LISTEN connections to the stack's database (as a failover or an admin would)."""
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND query LIKE 'LISTEN%%'",
            (database,),
        ).fetchall()
    return len(rows)


def test_wait_answers_when_its_notifications_are_lost(stack: Stack) -> None:
    client = Client(stack.url, stack.token("listener-killer"))
    assert terminate_listeners(stack.name) >= 1  # the API listens: its notifications are now lost
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(
            client.submit, "gbdtclassification", "iris_dataset2.csv", interpretability="permutation", wait=60
        )
        while not answer.done():  # keep killing the listener until the answer is there
            terminate_listeners(stack.name)
            time.sleep(0.05)
        response = answer.result()
    assert response.status_code == 200, response.text
    assert explanation(response.json(), "permutation")["feature_names"]
