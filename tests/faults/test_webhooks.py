"""Webhooks are never lost: the outbox row is written with the job's last transition and sent by the
API's dispatcher, which needs only the database. SIGKILL of every process, a broker outage, and 50 jobs
finishing together with two dispatchers competing: each webhook arrives, once, verifiable.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from tests.faults.conftest import RedisServer, assert_finished_exactly_once, client_for, slow_csv, slow_params
from tests.stack import Client, Stack
from tests.waiting import wait_until
from tests.webhook_receiver import Receiver

pytestmark = [pytest.mark.service, pytest.mark.slow]

QUICK = ("gbdtclassification", "iris_dataset2.csv")
MANY_QUICK_RETRIES = ",".join(["0.5"] + ["1"] * 60)  # a minute of retries, enough for any restart here


def deliveries(client: Client, job_id: str) -> list[dict[str, Any]]:
    response = client.http.get(f"/jobs/{job_id}/webhooks")
    assert response.status_code == 200, response.text
    return response.json()["deliveries"]


def test_webhook_survives_sigkill_of_the_whole_stack(
    redis_server: RedisServer, stacks: Callable[..., Stack]
) -> None:
    stack = stacks(
        extra_env={
            "FITEXPLAIN_BROKER_URL": redis_server.url,
            "FITEXPLAIN_WEBHOOK_RETRY_SCHEDULE": MANY_QUICK_RETRIES,
            "FITEXPLAIN_WEBHOOK_TIMEOUT": "2",  # a lease of 9 s for an attempt cut off by the kill
        }
    )
    worker = stack.start_worker()
    stack.start_api()
    alice = client_for(stack)
    secret = alice.http.get("/webhook-secret").json()["secret"]
    receiver = Receiver()  # down: nothing listens on its port yet

    response = alice.submit(*QUICK, webhook_url=receiver.url())
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    failed_attempts = wait_until(
        lambda: [a for d in deliveries(alice, job_id) for a in d["attempt_log"] if a["error"]],
        120,
        "a failed delivery attempt",
    )
    assert all("ConnectError" in a["error"] for a in failed_attempts)
    (before,) = deliveries(alice, job_id)
    assert before["status"] == "pending"

    stack.stop_worker(worker, signal.SIGKILL)
    assert stack.api is not None
    stack.api.send_signal(signal.SIGKILL)
    stack.api.wait(timeout=10)
    stack.start_worker()
    stack.start_api()
    receiver.start()
    try:
        body, headers = receiver.received.get(timeout=120)
    finally:
        receiver.stop()

    message = Webhook(secret).verify(body, headers)
    assert message["type"] == "job.succeeded" and message["data"]["id"] == job_id
    assert headers["webhook-id"] == before["message_id"] == f"{job_id}-succeeded"
    (after,) = wait_until(
        lambda: [d for d in deliveries(alice, job_id) if d["status"] == "delivered"], 60, "delivered"
    )
    assert after["id"] == before["id"] and after["attempts"] >= 2
    assert after["attempt_log"][-1]["status_code"] == 204
    assert_finished_exactly_once(stack, [job_id])


def test_webhook_arrives_when_the_broker_is_down_as_the_job_finishes(
    redis_server: RedisServer, stacks: Callable[..., Stack]
) -> None:
    stack = stacks(extra_env={"FITEXPLAIN_BROKER_URL": redis_server.url})
    stack.start_worker()
    stack.start_api()
    alice = client_for(stack)
    secret = alice.http.get("/webhook-secret").json()["secret"]
    receiver = Receiver().start()
    try:
        response = alice.submit("gbdtclassification", slow_csv(), webhook_url=receiver.url(), **slow_params())
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        wait_until(lambda: alice.http.get(f"/jobs/{job_id}").json()["status"] == "running", 120, "start")
        redis_server.kill()

        body, headers = receiver.received.get(timeout=180)  # while the broker is still down
        assert Webhook(secret).verify(body, headers)["data"]["id"] == job_id
        assert json.loads(body)["type"] == "job.succeeded"

        redis_server.start()
        # A later job's webhook is the barrier: had the first been sent twice, it would be here too.
        later = alice.submit(*QUICK, webhook_url=receiver.url())
        later_body, _ = receiver.received.get(timeout=180)
        assert json.loads(later_body)["data"]["id"] == later.json()["id"]
        assert receiver.all_received() == []
    finally:
        receiver.stop()
    (delivery,) = deliveries(alice, job_id)
    assert delivery["status"] == "delivered" and delivery["attempts"] == 1
    assert_finished_exactly_once(stack, [job_id, later.json()["id"]])


def test_fifty_jobs_finishing_together_get_fifty_deliveries_once_each(
    redis_server: RedisServer, stacks: Callable[..., Stack]
) -> None:
    stack = stacks(extra_env={"FITEXPLAIN_BROKER_URL": redis_server.url})
    stack.start_worker(concurrency=2)
    stack.start_api("--workers", "2")  # two API processes: two dispatchers compete for every delivery
    alice = client_for(stack)
    receiver = Receiver().start()
    try:
        job_ids = []
        for seed in range(50):
            response = alice.submit(*QUICK, seed=seed, webhook_url=receiver.url())
            assert response.status_code == 202, response.text
            job_ids.append(response.json()["id"])
        for job_id in job_ids:
            assert alice.wait(job_id, timeout=300)["status"] == "succeeded"
        for job_id in job_ids:
            wait_until(
                lambda job_id=job_id: deliveries(alice, job_id)[0]["status"] == "delivered",
                120,
                f"the webhook of {job_id}",
            )
        received = receiver.all_received()
    finally:
        receiver.stop()
    ids = [headers["webhook-id"] for _, headers in received]
    assert sorted(ids) == sorted(f"{job_id}-succeeded" for job_id in job_ids)  # 50, none twice
    for job_id in job_ids:
        (delivery,) = deliveries(alice, job_id)
        assert delivery["attempts"] == 1 and len(delivery["attempt_log"]) == 1, delivery["attempt_log"]
