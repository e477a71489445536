"""The public model list, the account route, health, metrics and the admin JSON routes, in process."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from shared.db import session_scope
from shared.settings import get_settings
from shared.store.jobstore import fail
from tests.inprocess.factories import Account, ago, make_job, set_job

STATUSES = {"queued", "running", "succeeded", "failed", "cancelled"}


def test_models_lists_the_allowed_names(client: TestClient) -> None:
    body = client.get("/models").json()
    assert set(body) == {"classifiers", "regressors", "gbdt_model_types"}
    assert body["gbdt_model_types"] == ["lightgbm", "xgboost", "catboost", "gradientboosting"]
    assert "RandomForestClassifier" in body["classifiers"] and "ElasticNet" in body["regressors"]
    assert "RandomForestClassifier" not in body["regressors"]


def test_health_and_readiness_see_the_real_database_and_broker(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "ready": True,
        "checks": {"database": "ok", "broker": "ok"},
        "workers_alive": 0,  # none in this process: said, but not a reason to refuse traffic
        "notes": ["no worker is alive: jobs wait in the queue until one starts"],
    }


def from_address(client: TestClient, host: str) -> TestClient:
    """The same app, asked from the socket address `host`."""
    return TestClient(client.app, client=(host, 50000))


def test_metrics_count_jobs_by_status(client: TestClient, alice: Account) -> None:
    make_job(alice.id)
    with session_scope() as session:
        fail(session, make_job(alice.id), "non_numeric", "bad")
    text = from_address(client, "127.0.0.1").get("/metrics").text
    assert 'fitexplain_jobs{status="queued"} 1.0' in text
    assert 'fitexplain_job_failures{code="non_numeric"} 1.0' in text


@pytest.mark.parametrize(
    ("peer", "headers", "answer"),
    [
        ("127.0.0.1", {}, 200),
        ("::1", {}, 200),
        ("203.0.113.7", {}, 401),
        ("127.0.0.1", {"X-Forwarded-For": "127.0.0.1"}, 401),  # a proxy on this host forwards someone
        ("127.0.0.1", {"Forwarded": "for=127.0.0.1"}, 401),
        ("203.0.113.7", {"Authorization": "Bearer scrape-me"}, 200),
        ("203.0.113.7", {"Authorization": "Bearer wrong"}, 401),
        ("203.0.113.7", {"Authorization": "Bearer sçrape".encode("latin-1")}, 401),  # not a 500
    ],
)
def test_metrics_answer_this_host_or_the_metrics_token(
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    peer: str,
    headers: dict[str, str | bytes],
    answer: int,
) -> None:
    monkeypatch.setenv("FITEXPLAIN_METRICS_TOKEN", "scrape-me")
    get_settings.cache_clear()
    try:
        response = from_address(client, peer).get("/metrics", headers=headers)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert response.status_code == answer, response.text
    if answer == 401:
        assert response.json()["code"] == "unauthorized" and "FITEXPLAIN_METRICS_TOKEN" in response.text
        assert response.headers["WWW-Authenticate"] == "Bearer"
    else:
        assert "fitexplain_jobs" in response.text


def test_without_a_metrics_token_no_bearer_opens_metrics(client: TestClient) -> None:
    response = from_address(client, "203.0.113.7").get("/metrics", headers={"Authorization": "Bearer "})
    assert response.status_code == 401


def test_the_webhook_secret_is_made_once_per_user(client: TestClient, alice: Account, bob: Account) -> None:
    first = client.get("/webhook-secret", headers=alice.headers).json()["secret"]
    assert first.startswith("whsec_")
    assert client.get("/webhook-secret", headers=alice.headers).json()["secret"] == first
    assert client.get("/webhook-secret", headers=bob.headers).json()["secret"] != first
    assert client.get("/webhook-secret").status_code == 401


def test_admin_routes_need_an_admin_token(client: TestClient, alice: Account) -> None:
    for path in ("/admin/jobs", "/admin/stats"):
        assert client.get(path).status_code == 401
        forbidden = client.get(path, headers=alice.headers)
        assert forbidden.status_code == 403
        assert "administrators" in forbidden.json()["detail"]


def test_admin_jobs_lists_every_users_jobs_with_their_names(
    client: TestClient, admin: Account, alice: Account, bob: Account
) -> None:
    old, new = make_job(alice.id), make_job(bob.id)
    set_job(old, created_at=ago(10))
    page = client.get("/admin/jobs", headers=admin.headers).json()
    assert (page["total"], page["limit"], page["offset"]) == (2, 50, 0)
    assert [(item["id"], item["user"]) for item in page["items"]] == [(new, "bob"), (old, "alice")]
    only_alice = client.get("/admin/jobs", params={"user": "alice"}, headers=admin.headers).json()
    assert [item["id"] for item in only_alice["items"]] == [old]
    set_job(new, status="cancelled")
    cancelled = client.get("/admin/jobs", params={"status": "cancelled"}, headers=admin.headers).json()
    assert [item["id"] for item in cancelled["items"]] == [new]
    too_many = client.get("/admin/jobs", params={"limit": 201}, headers=admin.headers)
    assert too_many.status_code == 422 and too_many.json()["errors"][0]["loc"] == ["query", "limit"]


def test_admin_stats_count_jobs_by_status_and_users(
    client: TestClient, admin: Account, alice: Account
) -> None:
    make_job(alice.id)
    set_job(make_job(alice.id), status="succeeded")
    body = client.get("/admin/stats", headers=admin.headers).json()
    assert set(body["jobs_by_status"]) == STATUSES
    assert (body["jobs_by_status"]["queued"], body["jobs_by_status"]["succeeded"]) == (1, 1)
    assert (body["total"], body["users"]) == (2, 2)


def test_the_admin_page_is_static_and_never_framed(client: TestClient) -> None:
    page = client.get("/admin")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
