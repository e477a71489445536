"""With private addresses refused (the production default), a webhook host is checked again at every
attempt against the address the connection then uses: DNS rebinding reaches nothing, and IPv6 forms
of internal IPv4 addresses are refused at submit.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.test_webhooks import IPV6_INTERNAL, QUICK, settled
from tests.stack import Client, Stack
from tests.webhook_receiver import Receiver

pytestmark = [pytest.mark.service]


@pytest.fixture(scope="module")
def public_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # The test resolver (tests.webhook_resolver, set in Stack.env) answers *.rebind.test with a public
    # address the first time and with 127.0.0.1 afterwards.
    stack = Stack(
        Path(tmp_path_factory.mktemp("public_only")),
        extra_env={"FITEXPLAIN_WEBHOOK_ALLOW_PRIVATE": "false"},
    ).setup()
    stack.start_worker()
    stack.start_api()
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def mallory(public_only: Stack) -> Client:
    return Client(public_only.url, public_only.token("mallory"))


def test_a_host_rebound_to_loopback_is_not_delivered_to(mallory: Client) -> None:
    client = mallory
    receiver = Receiver().start()
    try:
        url = receiver.url(host="evil.rebind.test")
        response = client.submit(*QUICK, webhook_url=url)
        assert response.status_code == 202, response.text  # public at submit
        job_id = response.json()["id"]
        (delivery,) = settled(client, job_id)
        assert receiver.all_received() == []
    finally:
        receiver.stop()
    assert delivery["status"] == "failed" and delivery["attempts"] == 4
    for attempt in delivery["attempt_log"]:
        assert attempt["status_code"] is None and attempt["address"] is None
        assert "refused" in attempt["error"] and "non-public address (127.0.0.1)" in attempt["error"]


@pytest.mark.parametrize("url", IPV6_INTERNAL)
def test_ipv6_forms_of_internal_addresses_are_refused(mallory: Client, url: str) -> None:
    client = mallory
    response = client.submit(*QUICK, webhook_url=url)
    assert response.status_code == 422, response.text
    assert "non-public address" in response.json()["detail"]
    ping = client.http.post("/webhooks/test", params={"url": url})
    assert ping.status_code == 422 and "non-public address" in ping.json()["detail"]


def test_ping_to_loopback_is_refused(mallory: Client) -> None:
    client = mallory
    response = client.http.post("/webhooks/test", params={"url": "http://127.0.0.1:9/h"})
    assert response.status_code == 422 and "non-public address (127.0.0.1)" in response.json()["detail"]
