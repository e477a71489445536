"""A job named by a prefix of its id on every `/jobs/{job_id}` route: unique among the caller's jobs, 409
when ambiguous, 422 when shorter than six characters, and another user's jobs never matched nor
revealed."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from shared.db import session_scope
from shared.store.jobstore import claim, succeed
from tests.inprocess.factories import Account, make_job

MINE = "abc123" + "0" * 26
TWIN = "abc123f" + "0" * 25  # shares MINE's first six characters
ROUTES = [("GET", ""), ("GET", "/result"), ("GET", "/webhooks"), ("POST", "/cancel"), ("DELETE", "")]


def succeeded(job_id: str) -> str:
    with session_scope() as session:
        assert claim(session, job_id, worker="w1", stale_after=60, max_attempts=3).job is not None
    with session_scope() as session:
        assert succeed(session, job_id, "w1", {"accuracy": 1.0})
    return job_id


@pytest.mark.parametrize("prefix", ["abc123", "abc1230", "ABC1230", MINE[:31], MINE.upper()])
def test_a_unique_prefix_names_the_callers_job(client: TestClient, alice: Account, prefix: str) -> None:
    mine = succeeded(make_job(alice.id, job_id=MINE))
    body = client.get(f"/jobs/{prefix}", headers=alice.headers).json()
    assert body["id"] == mine and body["links"]["self"] == f"/jobs/{mine}"
    assert client.get(f"/jobs/{prefix}/result", headers=alice.headers).json() == {"accuracy": 1.0}
    webhooks = client.get(f"/jobs/{prefix}/webhooks", headers=alice.headers).json()
    assert webhooks == {"job_id": mine, "deliveries": []}


def test_an_ambiguous_prefix_is_a_409_naming_it_and_the_callers_matches(
    client: TestClient, alice: Account, bob: Account
) -> None:
    make_job(alice.id, job_id=MINE)
    make_job(alice.id, job_id=TWIN)
    make_job(bob.id, job_id="abc123" + "e" * 26)  # bob's: neither counted nor listed
    for method, path in ROUTES:
        response = client.request(method, f"/jobs/abc123{path}", headers=alice.headers)
        assert response.status_code == 409, (method, path, response.text)
        body = response.json()
        assert (body["code"], body["prefix"], body["count"]) == ("ambiguous_id", "abc123", 2)
        assert sorted(body["matches"]) == sorted([MINE, TWIN])
        assert "'abc123' matches 2 of your jobs" in body["detail"]
    assert client.get("/jobs/abc123f", headers=alice.headers).json()["id"] == TWIN  # one more: unique


@pytest.mark.parametrize("short", ["a", "abc12", "ABC12", "nope!"])
def test_a_prefix_shorter_than_six_is_a_422_naming_the_minimum(
    client: TestClient, alice: Account, short: str
) -> None:
    make_job(alice.id, job_id=MINE)
    for method, path in ROUTES:
        response = client.request(method, f"/jobs/{short}{path}", headers=alice.headers)
        assert response.status_code == 422, (method, path, response.text)
        body = response.json()
        assert (body["code"], body["minimum"]) == ("id_too_short", 6)
        assert "at least its first 6 characters" in body["detail"]


def test_another_users_job_is_never_matched_by_a_prefix(
    client: TestClient, alice: Account, bob: Account
) -> None:
    bobs = succeeded(make_job(bob.id, job_id=MINE))
    for method, path in ROUTES:
        response = client.request(method, f"/jobs/abc123{path}", headers=alice.headers)
        assert (response.status_code, response.json()["code"]) == (404, "not_found"), (method, path)
        assert bobs not in response.text
    assert client.get("/jobs/abc123", headers=bob.headers).json()["id"] == bobs


@pytest.mark.parametrize("unknown", ["fedcba", "abc123" + "0" * 27, "abc12z", "abc12-3", "abc_23"])
def test_a_prefix_of_no_job_is_a_404(client: TestClient, alice: Account, unknown: str) -> None:
    make_job(alice.id, job_id=MINE)
    response = client.get(f"/jobs/{unknown}", headers=alice.headers)
    assert (response.status_code, response.json()["code"]) == (404, "not_found")


def test_cancel_and_delete_by_prefix_act_on_the_full_id(client: TestClient, alice: Account) -> None:
    queued = make_job(alice.id, job_id=MINE)
    cancelled = client.post("/jobs/abc123/cancel", headers=alice.headers)
    assert (cancelled.status_code, cancelled.json()["id"], cancelled.json()["status"]) == (
        200,
        queued,
        "cancelled",
    )
    assert client.delete("/jobs/abc123", headers=alice.headers).status_code == 204
    assert client.get(f"/jobs/{queued}", headers=alice.headers).status_code == 404
