"""Redis outages lose no job: the job row is the outbox, and the API's sweep publishes what Redis lost.

Each test runs its own redis-server (never the machine's shared one) and kills it with SIGKILL, so the
queue's contents are gone as after a crash without persistence.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.faults.conftest import (
    RedisServer,
    assert_finished_exactly_once,
    client_for,
    job_events,
    job_row,
    slow_csv,
    slow_params,
)
from tests.stack import Stack
from tests.waiting import wait_until

pytestmark = [pytest.mark.service, pytest.mark.slow]

QUICK = ("gbdtclassification", "iris_dataset2.csv")


def test_jobs_submitted_while_redis_is_down_run_once_it_is_back(
    redis_server: RedisServer, stacks: Callable[..., Stack]
) -> None:
    stack = stacks(extra_env={"FITEXPLAIN_BROKER_URL": redis_server.url})
    stack.start_worker()
    stack.start_api()
    alice = client_for(stack)

    redis_server.kill()
    job_ids = []
    for seed in range(3):
        response = alice.submit(*QUICK, seed=seed)
        assert response.status_code == 202, response.text
        job_ids.append(response.json()["id"])
    events = job_events(stack)
    assert all("dispatched" not in events[job_id] for job_id in job_ids), events

    redis_server.start()
    for job_id in job_ids:
        assert alice.wait(job_id, timeout=120)["status"] == "succeeded"
        assert job_row(stack, job_id)["attempts"] == 1
    assert_finished_exactly_once(stack, job_ids)


def test_redis_restarted_mid_run_loses_no_job(
    redis_server: RedisServer, stacks: Callable[..., Stack]
) -> None:
    stack = stacks(extra_env={"FITEXPLAIN_BROKER_URL": redis_server.url})
    stack.start_worker()
    stack.start_worker()
    stack.start_api()
    alice = client_for(stack)

    slow = [alice.submit("gbdtclassification", slow_csv(seed=seed), **slow_params()) for seed in range(2)]
    quick = [alice.submit(*QUICK, seed=seed) for seed in range(6)]
    job_ids = [response.json()["id"] for response in slow + quick]
    assert all(response.status_code == 202 for response in slow + quick)
    # Both workers busy with the slow jobs: the quick ones sit in Redis, and die with it.
    wait_until(
        lambda: all(job_row(stack, job_id)["status"] == "running" for job_id in job_ids[:2]),
        120,
        "both slow jobs running",
    )
    assert job_row(stack, job_ids[-1])["status"] == "queued"
    redis_server.kill()
    redis_server.start()

    for job_id in job_ids:
        assert alice.wait(job_id, timeout=180)["status"] == "succeeded", job_row(stack, job_id)
    assert_finished_exactly_once(stack, job_ids)
