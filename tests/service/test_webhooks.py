"""Webhooks through the real stack: signed Standard Webhooks messages from the outbox, every attempt
recorded, retried on a (short, in tests) schedule, pinned to the checked address, never redirected;
redelivery, secret rotation, the test ping, and the URL checks at submit.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from shared.ml.errors import ParameterError
from shared.webhooks.address import check_url
from tests.stack import Client, Stack
from tests.waiting import wait_until
from tests.webhook_receiver import Receiver

pytestmark = [pytest.mark.service]

QUICK = ("gbdtclassification", "iris_dataset2.csv")
DELIVERY_KEYS = {
    "id",
    "event_type",
    "message_id",
    "url",
    "status",
    "attempts",
    "next_attempt_at",
    "last_status",
    "last_error",
    "delivered_at",
    "created_at",
    "requested_by",
    "attempt_log",
}
ATTEMPT_KEYS = {"number", "at", "address", "status_code", "latency_ms", "error", "response"}


def deliveries(client: Client, job_id: str) -> list[dict[str, Any]]:
    response = client.http.get(f"/jobs/{job_id}/webhooks")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"job_id", "deliveries"} and body["job_id"] == job_id
    return body["deliveries"]


def settled(client: Client, job_id: str, count: int = 1) -> list[dict[str, Any]]:
    """The job's deliveries once `count` of them exist and none is pending."""

    def done() -> list[dict[str, Any]] | None:
        rows = deliveries(client, job_id)
        return rows if len(rows) >= count and all(d["status"] != "pending" for d in rows) else None

    return wait_until(done, 60, f"the webhooks of job {job_id} to settle")


def submit(client: Client, url: str, **params: object) -> str:
    response = client.submit(*QUICK, webhook_url=url, **params)
    assert response.status_code == 202, response.text
    return response.json()["id"]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


def test_finished_job_calls_the_signed_webhook(alice: Client, bob: Client, receiver: Receiver) -> None:
    job_id = submit(alice, receiver.url())
    body, headers = receiver.received.get(timeout=120)
    secret = alice.http.get("/webhook-secret").json()["secret"]
    message = Webhook(secret).verify(body, headers)
    assert message["type"] == "job.succeeded"
    data = message["data"]
    assert set(data) == {"id", "endpoint", "status", "error", "summary", "finished_at", "links"}
    assert data["id"] == job_id and data["links"]["result"] == f"/jobs/{job_id}/result"
    assert data["status"] == "succeeded" and data["error"] is None
    assert set(data["summary"]) == {"accuracy", "rows", "run_seconds"}
    assert data["summary"]["accuracy"] == alice.result(job_id)["accuracy"]
    assert data["summary"]["rows"] == 150 and data["summary"]["run_seconds"] >= 0
    assert headers["webhook-id"] == f"{job_id}-succeeded"
    other_secret = bob.http.get("/webhook-secret").json()["secret"]
    assert other_secret != secret
    with pytest.raises(Exception, match="signature"):
        Webhook(other_secret).verify(body, headers)

    (delivery,) = settled(alice, job_id)
    assert set(delivery) == DELIVERY_KEYS
    assert delivery["status"] == "delivered" and delivery["attempts"] == 1
    assert delivery["message_id"] == headers["webhook-id"] and delivery["event_type"] == "job.succeeded"
    assert delivery["url"] == receiver.url() and delivery["requested_by"] is None
    (attempt,) = delivery["attempt_log"]
    assert set(attempt) == ATTEMPT_KEYS
    assert attempt["status_code"] == 204 and attempt["address"] == "127.0.0.1" and attempt["error"] is None
    assert bob.http.get(f"/jobs/{job_id}/webhooks").status_code == 404


def test_failing_receiver_is_retried_on_the_schedule_then_failed_for_good(alice: Client) -> None:
    server = Receiver(status=500).start()
    try:
        job_id = submit(alice, server.url())
        (delivery,) = settled(alice, job_id)
    finally:
        server.stop()
    # FITEXPLAIN_WEBHOOK_RETRY_SCHEDULE=0.3,0.5,1 in tests: the first attempt and three retries
    assert delivery["status"] == "failed" and delivery["attempts"] == 4, delivery
    assert [a["number"] for a in delivery["attempt_log"]] == [1, 2, 3, 4]
    assert all(a["status_code"] == 500 and a["response"] == "ok" for a in delivery["attempt_log"])
    ids = {headers["webhook-id"] for _, headers in server.all_received()}
    assert ids == {delivery["message_id"]}


def test_redirects_are_not_followed(alice: Client, receiver: Receiver) -> None:
    redirector = Receiver(status=307, location=receiver.url("/inside")).start()
    try:
        job_id = submit(alice, redirector.url())
        (delivery,) = settled(alice, job_id)
    finally:
        redirector.stop()
    assert delivery["status"] == "failed"
    assert {a["status_code"] for a in delivery["attempt_log"]} == {307}
    assert receiver.all_received() == []


def test_the_connection_goes_to_the_checked_address_with_the_original_host(
    alice: Client, receiver: Receiver
) -> None:
    # Only the test resolver knows pinned.loopback.test (-> 127.0.0.1): the system resolver, which
    # an unpinned client would ask again, cannot resolve it, so an arrival proves the pinning.
    url = receiver.url(host="pinned.loopback.test")
    submit(alice, url)
    _, headers = receiver.received.get(timeout=120)
    assert headers["host"] == f"pinned.loopback.test:{receiver.port}"


def test_redeliver_sends_the_same_message_again(alice: Client, bob: Client, receiver: Receiver) -> None:
    job_id = submit(alice, receiver.url())
    first, first_headers = receiver.received.get(timeout=120)
    settled(alice, job_id)
    assert bob.http.post(f"/jobs/{job_id}/webhooks/redeliver").status_code == 404
    response = alice.http.post(f"/jobs/{job_id}/webhooks/redeliver")
    assert response.status_code == 202, response.text
    assert set(response.json()) == DELIVERY_KEYS and response.json()["requested_by"] == "alice"
    again, again_headers = receiver.received.get(timeout=60)
    assert again_headers["webhook-id"] == first_headers["webhook-id"]
    assert json.loads(again) == json.loads(first)
    rows = settled(alice, job_id, count=2)
    assert [d["status"] for d in rows] == ["delivered", "delivered"]
    assert [d["requested_by"] for d in rows] == [None, "alice"]


def test_redeliver_refuses_a_job_without_webhook(alice: Client) -> None:
    response = alice.submit(*QUICK)
    job_id = response.json()["id"]
    alice.wait(job_id)
    answer = alice.http.post(f"/jobs/{job_id}/webhooks/redeliver")
    assert answer.status_code == 409 and "without a webhook_url" in answer.json()["detail"]
    assert deliveries(alice, job_id) == []


def test_cancelling_through_the_api_sends_job_cancelled(alice: Client, receiver: Receiver) -> None:
    from tests.faults.conftest import slow_csv, slow_params

    response = alice.submit("gbdtclassification", slow_csv(), webhook_url=receiver.url(), **slow_params())
    job_id = response.json()["id"]
    cancelled = alice.http.delete(f"/jobs/{job_id}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    body, headers = receiver.received.get(timeout=60)
    assert json.loads(body)["type"] == "job.cancelled" and headers["webhook-id"] == f"{job_id}-cancelled"


def test_rotated_secret_and_the_previous_one_both_verify(stack: Stack, receiver: Receiver) -> None:
    carol = Client(stack.url, stack.token("carol"))
    old = carol.http.get("/webhook-secret").json()["secret"]
    rotated = carol.http.post("/webhook-secret/rotate")
    assert rotated.status_code == 200, rotated.text
    assert set(rotated.json()) == {"secret", "scheme", "previous_secret_valid_until"}
    new = rotated.json()["secret"]
    assert new != old and carol.http.get("/webhook-secret").json()["secret"] == new
    submit(carol, receiver.url())
    body, headers = receiver.received.get(timeout=120)
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert Webhook(old).verify(body, headers) == Webhook(new).verify(body, headers)


def test_ping_is_signed_and_answered_with_the_receivers_status(alice: Client, receiver: Receiver) -> None:
    response = alice.http.post("/webhooks/test", params={"url": receiver.url()})
    assert response.status_code == 200, response.text
    result = response.json()
    assert set(result) == {
        "url",
        "message_id",
        "delivered",
        "status_code",
        "latency_ms",
        "address",
        "error",
        "response",
    }
    assert result["delivered"] is True and result["status_code"] == 204 and result["error"] is None
    body, headers = receiver.received.get(timeout=10)
    message = Webhook(alice.http.get("/webhook-secret").json()["secret"]).verify(body, headers)
    assert message["type"] == "ping" and headers["webhook-id"] == result["message_id"]

    down = Receiver()  # never started: nothing listens there
    unreachable = alice.http.post("/webhooks/test", params={"url": down.url()}).json()
    assert unreachable["delivered"] is False and unreachable["status_code"] is None
    assert "ConnectError" in unreachable["error"]


BAD_URLS = {
    "http://127.0.0.1:99999/h": "port '99999'",
    "http://127.0.0.1:65536/h": "port '65536'",
    "http://127.0.0.1:abc/h": "port 'abc'",
    "http://127.0.0.1:-1/h": "port '-1'",
    "http://[::1/h": "not a valid URL",
    "ftp://example.com/x": "http(s) URL",
}


@pytest.mark.parametrize("url", BAD_URLS)
def test_malformed_webhook_urls_are_422_naming_the_problem(alice: Client, url: str) -> None:
    response = alice.submit(*QUICK, webhook_url=url)
    assert response.status_code == 422, response.text
    assert "webhook_url" in response.json()["detail"] and BAD_URLS[url] in response.json()["detail"]
    ping = alice.http.post("/webhooks/test", params={"url": url})
    assert ping.status_code == 422 and BAD_URLS[url] in ping.json()["detail"]


def test_metrics_count_deliveries_by_outcome(alice: Client, stack: Stack, receiver: Receiver) -> None:
    job_id = submit(alice, receiver.url())
    settled(alice, job_id)
    text = alice.http.get("/metrics").text
    metric = 'fitexplain_webhook_deliveries{outcome="delivered"}'
    delivered = [line for line in text.splitlines() if line.startswith(metric)]
    assert delivered and float(delivered[0].split()[-1]) >= 1
    assert 'fitexplain_webhook_deliveries{outcome="failed"}' in text
    assert "fitexplain_webhook_oldest_undelivered_seconds " in text


IPV6_INTERNAL = [
    "http://[::127.0.0.1]/h",  # IPv4-compatible
    "http://[::ffff:127.0.0.1]/h",  # IPv4-mapped
    "http://[::ffff:0:7f00:1]/h",  # IPv4-translated
    "http://[64:ff9b::127.0.0.1]/h",  # NAT64
    "http://[64:ff9b::a9fe:a9fe]/h",  # NAT64 of 169.254.169.254
    "http://[2002:7f00:1::]/h",  # 6to4 of 127.0.0.1
    "http://[2002:a00:1::]/h",  # 6to4 of 10.0.0.1
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/h",  # Teredo, client 127.0.0.1
]


def test_webhook_url_must_be_http_and_public() -> None:
    for bad in ("ftp://example.com/x", "not a url", "http:///nohost", *BAD_URLS):
        with pytest.raises(ParameterError):
            check_url(bad, allow_private=True)
    private = ["http://127.0.0.1:9/x", "http://10.0.0.1/x", "http://[::1]/x", "http://169.254.169.254/"]
    for url in private + IPV6_INTERNAL:
        with pytest.raises(ParameterError, match="non-public"):
            check_url(url, allow_private=False)
    check_url("http://127.0.0.1:9/x", allow_private=True)
    check_url("http://[2606:4700:4700::1111]/h", allow_private=False)  # a public IPv6 address
    check_url("http://[64:ff9b::808:808]/h", allow_private=False)  # NAT64 of the public 8.8.8.8
