"""Hostile users: stolen, revoked or expired tokens, other users' job ids, non-admins on admin routes.

The route lists come from the running app's OpenAPI schema, so a route added later is covered here
without anyone remembering to add it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text, update
from sqlalchemy.orm import Session

from shared.auth import hash_token
from shared.tables import ApiToken, User, utcnow
from tests.stack import DATA, Client, Stack

pytestmark = [pytest.mark.service]

IRIS = (DATA / "iris_dataset2.csv").read_bytes()
PUBLIC_ROUTES = {("get", "/healthz"), ("get", "/readyz"), ("get", "/models"), ("get", "/metrics")}
KNOWN_JOB_ROUTES = {("get", "/jobs/{job_id}"), ("delete", "/jobs/{job_id}"), ("get", "/jobs/{job_id}/result")}
UNKNOWN_ID = "0" * 32


@pytest.fixture(scope="module")
def engine(stack: Stack) -> Iterator[Engine]:
    made = create_engine(stack.database_url)
    yield made
    made.dispose()


@pytest.fixture(scope="module")
def operations(stack: Stack) -> set[tuple[str, str]]:
    schema = httpx.get(f"{stack.url}/openapi.json").json()
    return {(method, path) for path, methods in schema["paths"].items() for method in methods}


@pytest.fixture(scope="module")
def admin(stack: Stack) -> Client:
    return Client(stack.url, stack.token("root", admin=True))


def fill(path: str, value: str) -> str:
    return re.sub(r"\{[^}]+\}", value, path)


def anonymous(stack: Stack, method: str, path: str, **headers: str) -> httpx.Response:
    return httpx.request(method, f"{stack.url}{fill(path, UNKNOWN_ID)}", headers=headers, timeout=30)


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, (response.request.url, response.text)
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["detail"]


# Tokens ---------------------------------------------------------------------------------------------


def test_tokens_are_stored_only_as_hashes(stack: Stack, engine: Engine) -> None:
    token = stack.token("tess")
    secret = token.removeprefix("fx_")
    with engine.connect() as connection:
        stored = connection.execute(
            text(
                "SELECT t.token_hash FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE u.name = 'tess'"
            )
        ).scalar_one()
        everything = " ".join(
            connection.execute(text(f"SELECT string_agg(t::text, ' ') FROM {table} t")).scalar() or ""
            for table in ("users", "api_tokens", "jobs", "job_events")
        )
    assert stored == hash_token(token) and len(stored) == 64
    assert secret not in everything and secret[:16] not in everything


def test_revoked_token_is_refused(stack: Stack, alice: Client) -> None:
    rita = Client(stack.url, stack.token("rita"))
    assert rita.http.get("/jobs").status_code == 200
    assert "revoked 1 token" in stack.cli("revoke-tokens", "rita")
    assert_unauthorized(rita.http.get("/jobs"))
    assert_unauthorized(rita.submit("gbdtclassification", IRIS))
    assert alice.http.get("/jobs").status_code == 200  # only rita's tokens went
    fresh = Client(stack.url, stack.token("rita"))  # a new token after revocation works
    assert fresh.http.get("/jobs").status_code == 200


def test_expired_token_is_refused(stack: Stack, engine: Engine) -> None:
    token = stack.cli("create-token", "ethan", "--ttl-days", "1").splitlines()[-1]
    ethan = Client(stack.url, token)
    assert ethan.http.get("/jobs").status_code == 200
    with Session(engine) as session:
        session.execute(
            update(ApiToken)
            .where(ApiToken.token_hash == hash_token(token))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        session.commit()
    assert_unauthorized(ethan.http.get("/jobs"))


def test_token_with_zero_ttl_is_already_expired(stack: Stack) -> None:
    zero = Client(stack.url, stack.cli("create-token", "zed", "--ttl-days", "0").splitlines()[-1])
    assert_unauthorized(zero.http.get("/jobs"))


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer fx_forged",
        "Bearer " + "A" * 10_000,
        "Basic cm9vdDpyb290",
        "Bearer ' OR '1'='1",
        "bearer",
    ],
)
def test_malformed_or_forged_credentials_are_refused(stack: Stack, authorization: str) -> None:
    assert_unauthorized(anonymous(stack, "get", "/jobs", Authorization=authorization))


def test_every_protected_route_refuses_anonymous_callers(
    stack: Stack, operations: set[tuple[str, str]]
) -> None:
    protected = operations - PUBLIC_ROUTES
    assert len(protected) >= 14 and operations >= PUBLIC_ROUTES
    for method, path in sorted(protected):
        assert_unauthorized(anonymous(stack, method, path))


# Object-level authorization ----------------------------------------------------------------------


def job_operations(operations: set[tuple[str, str]]) -> list[tuple[str, str]]:
    found = sorted((m, p) for m, p in operations if "{job_id}" in p)
    assert set(found) >= KNOWN_JOB_ROUTES
    assert all("{" not in fill(p, "") for _, p in found), "a per-job route with another path parameter"
    return found


def test_other_users_job_is_not_found_on_every_job_route(
    operations: set[tuple[str, str]], alice: Client, bob: Client
) -> None:
    """Bob gets exactly the answer he would get for an id that does not exist, both while Alice's job
    is fresh (DELETE would cancel it) and once it has a result (GET /result would send it)."""
    job_id = alice.submit("gbdtclassification", IRIS).json()["id"]
    for phase in ("fresh", "finished"):
        if phase == "finished":
            assert alice.wait(job_id)["status"] == "succeeded"
        for method, path in job_operations(operations):
            # A route that takes an upload is sent one: without it, FastAPI refuses the request (422) before
            # any job is looked up, whoever's it is.
            upload = {"files": {"file": ("rows.csv", IRIS)}} if path.endswith("/predict") else {}
            theirs = bob.http.request(method, fill(path, job_id), **upload)
            nobodys = bob.http.request(method, fill(path, UNKNOWN_ID), **upload)
            assert theirs.status_code == 404, (phase, method, path, theirs.text)
            assert theirs.json()["detail"].replace(job_id, UNKNOWN_ID) == nobodys.json()["detail"]
    assert alice.http.get(f"/jobs/{job_id}").json()["status"] == "succeeded"  # bob's DELETEs did nothing
    assert alice.http.get(f"/jobs/{job_id}/result").status_code == 200
    assert job_id not in {item["id"] for item in bob.http.get("/jobs", params={"limit": 100}).json()["items"]}


@pytest.mark.parametrize("job_id", ["' OR '1'='1", "..%2F..%2Fetc%2Fpasswd", "x" * 5000])
def test_hostile_job_ids_are_simply_not_found(alice: Client, job_id: str) -> None:
    for method in ("GET", "DELETE"):
        assert alice.http.request(method, f"/jobs/{job_id}").status_code == 404


def test_a_job_id_with_a_control_character_is_a_422_naming_it(alice: Client) -> None:
    for method in ("GET", "DELETE"):
        response = alice.http.request(method, "/jobs/%00")
        assert response.status_code == 422 and response.json()["parameter"] == "job_id", response.text


# Admin routes -------------------------------------------------------------------------------------


def test_admin_routes_refuse_anonymous_and_non_admins(
    stack: Stack, operations: set[tuple[str, str]], alice: Client, admin: Client
) -> None:
    admin_routes = sorted((m, p) for m, p in operations if p.startswith("/admin"))
    assert {("get", "/admin/jobs"), ("get", "/admin/stats")} <= set(admin_routes)
    for method, path in admin_routes:
        assert_unauthorized(anonymous(stack, method, path))
        refused = alice.http.request(method, fill(path, UNKNOWN_ID))
        assert refused.status_code == 403, (method, path)
        assert "administrators" in refused.json()["detail"]
        assert admin.http.request(method, fill(path, UNKNOWN_ID)).status_code in (200, 404), (method, path)
    assert admin.http.get("/admin/jobs", params={"user": "\x00"}).status_code == 422  # not a Postgres 5xx


def test_admin_flag_is_in_the_database_not_the_token(stack: Stack, engine: Engine) -> None:
    """Revoking admin rights takes effect on the next request, for tokens already handed out."""
    token = stack.token("ada", admin=True)
    ada = Client(stack.url, token)
    assert ada.http.get("/admin/stats").status_code == 200
    with Session(engine) as session:
        session.execute(update(User).where(User.name == "ada").values(is_admin=False))
        session.commit()
    assert ada.http.get("/admin/stats").status_code == 403
