"""What a hostile user probed, over real HTTP against the Postgres + Redis stack: a malformed CSRF token,
control characters in every kind of field, cancelled jobs in the dashboard and its Re-run, Retry-After
on every 429, `gzip;q=0`, the webhook test's own rate limit, /metrics for the operator only, and the
queue depth for admins only."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from shared.store import jobstore
from tests.faults.conftest import slow_csv, slow_params
from tests.stack import Browser, Client, Stack

pytestmark = [pytest.mark.service]

METRICS_TOKEN = "scrape-token-for-tests"
LIMITED = {
    "FITEXPLAIN_MAX_SUBMISSIONS_PER_MINUTE": "3",
    "FITEXPLAIN_WEBHOOK_TESTS_PER_MINUTE": "2",
    "FITEXPLAIN_METRICS_TOKEN": METRICS_TOKEN,
}


def outward_address() -> str | None:
    """An address of this host that is not loopback (the one a packet to the outside leaves from)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: UDP connect only picks the route
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") else address


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An API without workers (jobs stay queued), listening on every address, with low per-user limits
    and a metrics token."""
    deployment = Stack(tmp_path_factory.mktemp("limited"), extra_env=LIMITED).setup()
    deployment.start_api("--host", "0.0.0.0")
    yield deployment
    deployment.stop()


def fail_job(stack: Stack, job_id: str) -> None:
    """Fail a queued job as a worker would (the limited stack has none to take it)."""
    engine = create_engine(stack.database_url)
    try:
        with stack.as_this_process(), Session(engine) as session, session.begin():
            assert jobstore.fail(session, job_id, "internal_error", "failed for the test")
    finally:
        engine.dispose()


def submitted(client: Client, **params: object) -> str:
    response = client.submit("gbdtclassification", "iris_dataset2.csv", **params)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


# -- the CSRF token -------------------------------------------------------------------------------


@pytest.mark.parametrize("csrf", ["é" * 64, "x", "", "\u2603" * 10])
def test_a_malformed_or_non_ascii_csrf_token_is_a_403(stack: Stack, alice: Client, csrf: str) -> None:
    browser = Browser(stack, stack.token("csrf-probe"))
    job_id = submitted(alice)
    response = browser.post(f"/dashboard/jobs/{job_id}/cancel", csrf=csrf)
    assert response.status_code == 403, response.text
    assert "CSRF" in response.text


# -- control characters ---------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["endpoint", "error_code", "user", "since", "q"])
@pytest.mark.parametrize("char", ["\x00", "\x1b", "\n", "\x7f"])
def test_a_control_character_in_a_dashboard_filter_is_a_422_naming_it(
    stack: Stack, field: str, char: str
) -> None:
    admin = Browser(stack, stack.token("filter-probe", admin=True))
    response = admin.http.get("/dashboard/jobs", params={field: f"a{char}b"})
    assert response.status_code == 422, response.text
    assert f"{field}: contains a control character (U+{ord(char):04X}" in response.text


@pytest.mark.parametrize("url", ["https://example.com/\x00hook", "https://example.com/\r\nX-Evil: 1"])
def test_a_control_character_in_webhook_url_is_a_422_naming_it(alice: Client, url: str) -> None:
    response = alice.submit("gbdtclassification", "iris_dataset2.csv", webhook_url=url)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "invalid_parameter" and body["parameter"] == "webhook_url", body
    tested = alice.http.post("/webhooks/test", params={"url": url})
    assert tested.status_code == 422 and tested.json()["parameter"] == "url", tested.text


def test_a_control_character_in_a_path_or_a_form_field_is_a_422_naming_it(
    stack: Stack, alice: Client
) -> None:
    in_path = alice.http.get("/jobs/abc%00def")
    assert in_path.status_code == 422 and in_path.json()["parameter"] == "job_id", in_path.text
    sign_in = httpx.post(f"{stack.url}/dashboard/sign-in", data={"token": "fx_\x00abc"})
    assert sign_in.status_code == 422 and "token: contains a control character" in sign_in.text


# -- cancelled jobs in the dashboard ------------------------------------------------------------------


def test_cancelled_jobs_are_listed_and_filterable_and_offer_no_rerun(stack: Stack) -> None:
    token = stack.token("canceller")
    owner, browser = Client(stack.url, token), Browser(stack, token)
    # a job that runs for seconds: the cancel finds it queued or running, never already finished
    job_id = owner.submit("gbdtclassification", slow_csv(), **slow_params()).json()["id"]
    cancelled = owner.http.delete(f"/jobs/{job_id}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled", cancelled.text
    listed = browser.http.get("/dashboard/jobs", params={"status": "cancelled"})
    assert listed.status_code == 200
    assert job_id in listed.text and "1–1 of 1" in listed.text, listed.text
    everything = browser.http.get("/dashboard/jobs").text
    assert job_id in everything
    page = browser.http.get(f"/dashboard/jobs/{job_id}").text
    assert 'data-testid="rerun"' not in page  # its upload was let go at the cancel
    assert 'data-testid="delete"' in page


def test_a_failed_job_offers_rerun_and_rerun_makes_a_new_job(limited: Stack) -> None:
    token = limited.token("rerunner")
    owner, browser = Client(limited.url, token), Browser(limited, token)
    failed = submitted(owner)
    fail_job(limited, failed)
    page = browser.http.get(f"/dashboard/jobs/{failed}").text
    assert 'data-testid="rerun"' in page
    rerun = browser.post(f"/dashboard/jobs/{failed}/rerun")
    assert rerun.status_code == 303, rerun.text
    new_id = rerun.headers["location"].rsplit("/", 1)[-1]
    assert new_id != failed
    assert owner.http.get(f"/jobs/{new_id}").json()["status"] == "queued"  # no worker here to take it


# -- Retry-After, and the webhook test's own limit ------------------------------------------------------


def test_every_429_says_when_to_come_back(limited: Stack) -> None:
    token = limited.token("hurried")
    owner, browser = Client(limited.url, token), Browser(limited, token)
    first = submitted(owner)
    fail_job(limited, first)
    submitted(owner)
    rerun = browser.post(f"/dashboard/jobs/{first}/rerun")  # the third submission this minute
    assert rerun.status_code == 303, rerun.text
    api = owner.submit("gbdtclassification", "iris_dataset2.csv")
    assert api.status_code == 429 and int(api.headers["Retry-After"]) > 0, api.text
    assert api.json()["code"] == "rate_limited" and api.json()["retry_after"] > 0
    dashboard = browser.post(f"/dashboard/jobs/{first}/rerun")
    assert dashboard.status_code == 429, dashboard.text
    assert int(dashboard.headers["Retry-After"]) > 0
    assert "text/html" in dashboard.headers["content-type"]


def test_the_webhook_test_has_a_rate_limit_of_its_own(limited: Stack) -> None:
    pinger = Client(limited.url, limited.token("pinger"))
    other = Client(limited.url, limited.token("other-pinger"))
    url = "http://127.0.0.1:9/hook"  # nobody listens: each ping answers quickly, undelivered
    for _ in range(2):
        answered = pinger.http.post("/webhooks/test", params={"url": url})
        assert answered.status_code == 200, answered.text
    refused = pinger.http.post("/webhooks/test", params={"url": url})
    assert refused.status_code == 429, refused.text
    assert refused.json()["code"] == "rate_limited" and "FITEXPLAIN_WEBHOOK_TESTS_PER_MINUTE" in refused.text
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert other.http.post("/webhooks/test", params={"url": url}).status_code == 200  # per user


# -- gzip;q=0 -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(alice: Client) -> str:
    job_id = submitted(alice)
    assert alice.wait(job_id)["status"] == "succeeded"
    return job_id


@pytest.mark.parametrize(
    ("accept_encoding", "compressed"),
    [
        ("gzip", True),
        ("gzip;q=0", False),
        ("gzip;q=0, identity", False),
        ("*", True),
        ("*, gzip;q=0", False),
        ("identity", False),
    ],
)
def test_a_result_is_gzipped_only_where_gzip_is_accepted(
    alice: Client, finished: str, accept_encoding: str, compressed: bool
) -> None:
    response = alice.http.get(f"/jobs/{finished}/result", headers={"Accept-Encoding": accept_encoding})
    assert response.status_code == 200, response.text
    assert (response.headers.get("content-encoding") == "gzip") is compressed, response.headers
    assert "y_pred" in response.json()  # httpx decodes the gzip form; the plain one is JSON as sent


# -- operator surfaces -----------------------------------------------------------------------------------


def test_metrics_answer_this_host_or_the_metrics_token_only(limited: Stack) -> None:
    local = httpx.get(f"{limited.url}/metrics")
    assert local.status_code == 200 and "fitexplain_jobs" in local.text
    forwarded = httpx.get(f"{limited.url}/metrics", headers={"X-Forwarded-For": "127.0.0.1"})
    assert forwarded.status_code == 401, forwarded.text
    address = outward_address()
    if address is None:
        pytest.skip("this host has no address but loopback")
    outside = f"http://{address}:{limited.port}/metrics"
    refused = httpx.get(outside)
    assert refused.status_code == 401 and refused.json()["code"] == "unauthorized", refused.text
    assert "FITEXPLAIN_METRICS_TOKEN" in refused.json()["detail"]
    assert httpx.get(outside, headers={"Authorization": "Bearer wrong"}).status_code == 401
    scraped = httpx.get(outside, headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert scraped.status_code == 200 and "fitexplain_queue_depth" in scraped.text


def test_users_see_their_own_queue_position_and_admins_the_depth(limited: Stack) -> None:
    first, second = (limited.token(name) for name in ("queue-first", "queue-second"))
    ahead = Client(limited.url, first)
    behind = Client(limited.url, second)
    for _ in range(2):
        submitted(ahead)
    submitted(behind)
    admin = Browser(limited, limited.token("queue-admin", admin=True)).http.get("/dashboard").text
    assert 'data-testid="queue-depth"' in admin and 'data-testid="queue-position"' not in admin
    user = Browser(limited, second).http.get("/dashboard").text
    assert 'data-testid="queue-depth"' not in user
    position = user.split('data-testid="queue-position">', 1)[1].split("<", 1)[0]
    assert position.startswith("#") and int(position[1:]) >= 3  # two of the other user's arrived first
    idle = Browser(limited, limited.token("queue-idle")).http.get("/dashboard").text
    assert "none of your jobs waits" in idle
