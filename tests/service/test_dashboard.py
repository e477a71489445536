"""The dashboard over plain HTTP against the real stack: sign-in cookie, CSRF, headers, scoping, actions
(each recorded as a job event naming who), filters, and the workers table behind it."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from api.serialize import MAX_OFFSET
from shared.tables import Job, JobEvent, WorkerRow, utcnow
from tests.stack import DATA, Browser, Client, Stack
from tests.waiting import wait_until
from tests.webhook_receiver import Receiver

pytestmark = [pytest.mark.service]

IRIS = (DATA / "iris_dataset2.csv").read_bytes()


def negated(csv: bytes) -> bytes:
    lines = csv.decode().splitlines()
    return "\n".join([lines[0]] + ["-" + line for line in lines[1:]]).encode()


@pytest.fixture(scope="module")
def engine(stack: Stack) -> Iterator[Engine]:
    made = create_engine(stack.database_url)
    yield made
    made.dispose()


@pytest.fixture(scope="module")
def root(stack: Stack) -> Browser:
    return Browser(stack, stack.token("dash-root", admin=True))


@pytest.fixture(scope="module")
def carol(stack: Stack) -> tuple[Browser, Client]:
    token = stack.token("dash-carol")
    return Browser(stack, token), Client(stack.url, token)


def finished_job(
    client: Client, csv: bytes = IRIS, endpoint: str = "gbdtclassification", **params: object
) -> dict[str, object]:
    response = client.submit(endpoint, csv, **params)
    assert response.status_code == 202, response.text
    return client.wait(response.json()["id"])


def events(engine: Engine, job_id: str) -> list[tuple[str, str | None]]:
    with Session(engine) as session:
        rows = session.execute(
            select(JobEvent.event, JobEvent.detail).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def test_pages_need_a_session(stack: Stack) -> None:
    for path in ("/dashboard", "/dashboard/jobs", "/dashboard/workers", "/dashboard/jobs/abc"):
        response = httpx.get(stack.url + path)
        assert response.status_code == 303 and response.headers["location"] == "/dashboard/sign-in", path
    bad = httpx.post(stack.url + "/dashboard/sign-in", data={"token": "fx_wrong"})
    assert bad.status_code == 401 and "unknown, revoked or expired" in bad.text
    assert "set-cookie" not in bad.headers
    token = stack.token("dash-login")
    elsewhere = httpx.post(
        stack.url + "/dashboard/sign-in", data={"token": token}, headers={"Origin": "https://evil.example"}
    )
    assert elsewhere.status_code == 403 and "set-cookie" not in elsewhere.headers


def test_the_session_cookie_is_httponly_strict_and_secure_over_https(stack: Stack) -> None:
    token = stack.token("dash-cookie")
    plain = httpx.post(stack.url + "/dashboard/sign-in", data={"token": token})
    cookie = plain.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/dashboard" in cookie
    assert "Secure" not in cookie
    # behind a TLS-terminating proxy (uvicorn trusts X-Forwarded-Proto from 127.0.0.1)
    https = httpx.post(
        stack.url + "/dashboard/sign-in", data={"token": token}, headers={"X-Forwarded-Proto": "https"}
    )
    assert "Secure" in https.headers["set-cookie"]


def test_pages_are_strict_about_scripts_and_styles(root: Browser, alice: Client) -> None:
    job = finished_job(alice, interpretability="shap")
    for path in ("/dashboard", "/dashboard/jobs", "/dashboard/workers", f"/dashboard/jobs/{job['id']}"):
        response = root.http.get(path)
        assert response.status_code == 200, path
        policy = response.headers["content-security-policy"]
        assert (
            "script-src 'self'" in policy
            and "unsafe-inline" not in policy
            and "frame-ancestors 'none'" in policy
        )
        assert response.headers["cache-control"] == "no-store"
        page = response.text
        assert not re.search(r"<script(?![^>]*\bsrc=\"/dashboard/static/)", page), path  # no inline script
        assert " style=" not in page and " on" + "click=" not in page
        assert not re.search(r"(src|href)=\"(?!/)", page), path  # nothing from another site
    assert root.http.get("/dashboard/static/dashboard.js").status_code == 200


def test_actions_need_the_csrf_token_and_this_sites_origin(root: Browser, alice: Client) -> None:
    job_id = str(finished_job(alice)["id"])
    assert root.post(f"/dashboard/jobs/{job_id}/delete", csrf="").status_code == 403
    assert root.post(f"/dashboard/jobs/{job_id}/delete", csrf="0" * 64).status_code == 403
    assert root.post(f"/dashboard/jobs/{job_id}/delete", origin="https://evil.example").status_code == 403
    assert alice.http.get(f"/jobs/{job_id}").status_code == 200  # nothing happened
    done = root.post(f"/dashboard/jobs/{job_id}/delete")
    assert done.status_code == 303 and done.headers["location"] == "/dashboard/jobs"
    assert alice.http.get(f"/jobs/{job_id}").status_code == 404


def test_rerun_makes_a_linked_job_and_records_who(root: Browser, alice: Client, engine: Engine) -> None:
    failed = finished_job(
        alice, negated(IRIS), "mlclassification", base_model="MultinomialNB", n_hidden_features=0
    )
    assert failed["status"] == "failed", failed
    response = root.post(f"/dashboard/jobs/{failed['id']}/rerun")
    assert response.status_code == 303
    new_id = response.headers["location"].rsplit("/", 1)[1]
    assert new_id != failed["id"]
    rerun = alice.wait(new_id)  # the new job belongs to the job's owner, not to the admin
    assert rerun["endpoint"] == failed["endpoint"] and rerun["params"] == failed["params"]
    with Session(engine) as session:
        assert session.get(Job, new_id).rerun_of == failed["id"]  # type: ignore[union-attr]
    assert ("rerun", f"as job {new_id}, by dash-root") in events(engine, str(failed["id"]))
    assert ("rerun_of", f"job {failed['id']}, by dash-root") in events(engine, new_id)
    page = root.http.get(f"/dashboard/jobs/{failed['id']}").text
    assert f'href="/dashboard/jobs/{new_id}"' in page
    refused = root.post(f"/dashboard/jobs/{new_id}/cancel")  # already finished
    assert refused.status_code == 409 and "already" in refused.text


def delivered_count(client: Client, job_id: str) -> int:
    deliveries = client.http.get(f"/jobs/{job_id}/webhooks").json()["deliveries"]
    return sum(d["status"] == "delivered" for d in deliveries)


def test_redeliver_sends_the_webhook_again_and_records_who(
    root: Browser, alice: Client, engine: Engine
) -> None:
    receiver = Receiver().start()
    try:
        job_id = str(finished_job(alice, webhook_url=receiver.url())["id"])
        wait_until(lambda: delivered_count(alice, job_id) == 1, 60, "the first delivery")
        assert 'data-testid="redeliver"' in root.http.get(f"/dashboard/jobs/{job_id}").text
        response = root.post(f"/dashboard/jobs/{job_id}/redeliver")
        assert response.status_code == 303 and response.headers["location"] == f"/dashboard/jobs/{job_id}"
        assert ("webhook_redeliver", "asked by dash-root") in events(engine, job_id)
        wait_until(lambda: delivered_count(alice, job_id) == 2, 60, "the redelivery")
        bodies = [json.loads(body) for body, _ in receiver.all_received()]
        assert [body["data"]["id"] for body in bodies] == [job_id, job_id]
    finally:
        receiver.stop()
    without = finished_job(alice)
    refused = root.post(f"/dashboard/jobs/{without['id']}/redeliver")
    assert refused.status_code == 409 and "without a webhook_url" in refused.text


def test_an_ordinary_user_is_scoped_to_their_jobs(carol: tuple[Browser, Client], alice: Client) -> None:
    browser, client = carol
    own = str(finished_job(client)["id"])
    others = str(finished_job(alice)["id"])
    assert browser.http.get("/dashboard/workers").status_code == 403
    assert browser.http.get(f"/dashboard/jobs/{others}").status_code == 404
    assert browser.post(f"/dashboard/jobs/{others}/delete").status_code == 404
    listed = re.findall(r'data-job-id="([0-9a-f]+)"', browser.http.get("/dashboard/jobs").text)
    assert listed == [own]
    assert browser.http.get(f"/dashboard/jobs/{own}").status_code == 200


def test_job_list_filters_and_their_errors(root: Browser, alice: Client) -> None:
    job_id = str(finished_job(alice)["id"])
    found = root.http.get("/dashboard/jobs", params={"q": job_id[:10], "user": "alice"}).text
    assert re.findall(r'data-job-id="([0-9a-f]+)"', found) == [job_id]
    succeeded = root.http.get("/dashboard/jobs", params={"status": "succeeded", "limit": 20}).text
    assert set(re.findall(r'data-status="(\w+)"', succeeded)) == {"succeeded"}
    later = (utcnow() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert "data-job-id" not in root.http.get("/dashboard/jobs", params={"since": later}).text
    for params, message in (
        ({"status": "exploded"}, "status: &#39;exploded&#39; is not one of"),
        ({"since": "yesterday"}, "since: &#39;yesterday&#39; is not a date"),
        ({"q": "<b>"}, "q: search by job id"),
        ({"limit": 7}, "limit: one of 20, 50, 100"),
    ):
        response = root.http.get("/dashboard/jobs", params=params)
        assert response.status_code == 422 and message in response.text, params


def test_workers_register_count_jobs_and_age_out(
    stack: Stack, root: Browser, alice: Client, engine: Engine
) -> None:
    finished_job(alice)
    with Session(engine) as session:
        rows = session.scalars(select(WorkerRow)).all()
        assert len(rows) >= 2  # the stack's worker runs two pool processes
        assert sum(row.jobs_done for row in rows) >= 1
        assert all(row.queue == f"{stack.name},{stack.name}.large" for row in rows)
        session.add(
            WorkerRow(
                name="gone:1", host="gone", pid=1, queue="q", heartbeat_at=utcnow() - timedelta(hours=2)
            )
        )
        session.commit()
    page = root.http.get("/dashboard/workers").text
    assert page.count('data-testid="worker-row"') >= 2
    readiness = httpx.get(stack.url + "/readyz").json()
    assert readiness["workers_alive"] >= 2 and readiness["notes"] == []
    deadline = time.monotonic() + 30
    with Session(engine) as session:  # the API's sweep deletes rows silent for worker_forget_seconds
        while session.get(WorkerRow, "gone:1", populate_existing=True) is not None:
            assert time.monotonic() < deadline, "the dead worker's row was not deleted"
            session.rollback()
            time.sleep(0.2)


def test_a_huge_offset_is_refused_with_the_limit(root: Browser) -> None:
    """It used to reach the database driver and fail there (500 OverflowError)."""
    response = root.http.get("/dashboard/jobs", params={"offset": str(2**63)})
    assert response.status_code == 422 and str(MAX_OFFSET) in response.text
