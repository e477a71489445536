"""The public model list, the account route, health, metrics and the admin JSON routes, in process."""

from __future__ import annotations

from fastapi.testclient import TestClient

from shared.db import session_scope
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


def test_metrics_count_jobs_by_status(client: TestClient, alice: Account) -> None:
    make_job(alice.id)
    with session_scope() as session:
        fail(session, make_job(alice.id), "non_numeric", "bad")
    text = client.get("/metrics").text
    assert 'fitexplain_jobs{status="queued"} 1.0' in text
    assert 'fitexplain_job_failures{code="non_numeric"} 1.0' in text


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
