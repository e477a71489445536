"""A finished job calls the user's webhook with a Standard Webhooks signature made with their secret."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks.webhooks import Webhook

from shared.ml.errors import ParameterError
from shared.webhooks import check_url
from tests.stack import Client

pytestmark = [pytest.mark.service]


@pytest.fixture
def receiver() -> Iterator[tuple[str, queue.Queue[tuple[bytes, dict[str, str]]]]]:
    received: queue.Queue[tuple[bytes, dict[str, str]]] = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            received.put((body, {k.lower(): v for k, v in self.headers.items()}))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()


def test_finished_job_calls_the_signed_webhook(alice: Client, bob: Client, receiver) -> None:
    url, received = receiver
    response = alice.submit("gbdtclassification", "iris_dataset2.csv", webhook_url=url)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    body, headers = received.get(timeout=120)
    secret = alice.http.get("/webhook-secret").json()["secret"]
    message = Webhook(secret).verify(body, headers)
    assert message["type"] == "job.succeeded"
    assert message["data"]["id"] == job_id and message["data"]["links"]["result"] == f"/jobs/{job_id}/result"
    other_secret = bob.http.get("/webhook-secret").json()["secret"]
    assert other_secret != secret
    with pytest.raises(Exception, match="signature"):
        Webhook(other_secret).verify(body, headers)
    assert json.loads(body)["data"]["status"] == "succeeded"


def test_webhook_url_must_be_http_and_public() -> None:
    for bad in ("ftp://example.com/x", "not a url", "http:///nohost"):
        with pytest.raises(ParameterError):
            check_url(bad, allow_private=True)
    for private in ("http://127.0.0.1:9/x", "http://10.0.0.1/x", "http://[::1]/x", "http://169.254.169.254/"):
        with pytest.raises(ParameterError, match="non-public"):
            check_url(private, allow_private=False)
    check_url("http://127.0.0.1:9/x", allow_private=True)


def test_bad_webhook_url_is_refused_at_submit(alice: Client) -> None:
    response = alice.submit("gbdtclassification", "iris_dataset2.csv", webhook_url="ftp://example.com/x")
    assert response.status_code == 422
    assert "webhook_url" in response.json()["detail"]
