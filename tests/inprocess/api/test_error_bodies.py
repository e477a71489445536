"""Every route's errors in one shape, `{"code", "detail", ...}`, declared in the OpenAPI schema; the
/techtonique mount keeps FastAPI's own bodies and the dashboard its HTML pages.

The walk covers every route of `app.routes` with every method: each answers a method it does not take
with 405, and the routes that check more are provoked once more for each check (no token, unknown job,
bad parameter...)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Mount

from api.errors import CODES, ErrorBody, TechtoniqueErrorBody
from api.main import create_app
from tests.inprocess.factories import IRIS, Account, make_job

UNKNOWN = "0" * 32
SUBMITS = ("mlclassification", "mlregression", "gbdtclassification", "gbdtregression")
TECHTONIQUE = "/techtonique"
DASHBOARD = "/dashboard"
UNUSED_METHOD = "PATCH"  # no route takes it
FILE = {"file": ("iris.csv", IRIS, "text/csv")}


def every_route(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every route of the app, those of included routers too; a mount by a path in it."""
    pairs = []
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, Mount):
            pairs.append(("GET", f"{route.path}/missing.css"))
        else:
            pairs += [(method, route.path) for method in sorted(route.methods or ()) if method != "HEAD"]
    return pairs


ROUTES = every_route(create_app())


@dataclass(frozen=True)
class Provoked:
    """A request that the route answers with an error, and the answer's status and code."""

    status: int
    code: str
    token: bool = True  # whether alice's token goes with it
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    files: dict[str, Any] | None = None
    queued_job: bool = False  # the path's {job_id} is a queued job of alice's, else an unknown one


NO_TOKEN = Provoked(401, "unauthorized", token=False)
UNKNOWN_JOB = Provoked(404, "not_found")
NOT_ADMIN = Provoked(403, "forbidden")

PROVOKED: dict[tuple[str, str], list[Provoked]] = {
    **{
        ("POST", f"{mount}/{endpoint}"): [
            NO_TOKEN,
            Provoked(422, "invalid_parameter", files=FILE, params={"n_estimators": 0}),
            Provoked(422, "invalid_parameter"),  # no file
        ]
        for mount in ("", TECHTONIQUE)
        for endpoint in SUBMITS
    },
    ("GET", "/jobs"): [NO_TOKEN, Provoked(422, "invalid_parameter", params={"limit": 0})],
    ("GET", "/jobs/{job_id}"): [
        NO_TOKEN,
        UNKNOWN_JOB,
        Provoked(422, "invalid_parameter", params={"wait": -1}),
    ],
    ("DELETE", "/jobs/{job_id}"): [NO_TOKEN, UNKNOWN_JOB],
    ("POST", "/jobs/{job_id}/cancel"): [NO_TOKEN, UNKNOWN_JOB],
    ("GET", "/jobs/{job_id}/result"): [
        NO_TOKEN,
        UNKNOWN_JOB,
        Provoked(409, "conflict", queued_job=True),
        Provoked(406, "not_acceptable", queued_job=True, headers={"Accept": "text/html"}),
        Provoked(422, "invalid_parameter", params={"format": "xlsx"}),
    ],
    ("GET", "/jobs/{job_id}/webhooks"): [NO_TOKEN, UNKNOWN_JOB],
    ("POST", "/jobs/{job_id}/webhooks/redeliver"): [
        NO_TOKEN,
        UNKNOWN_JOB,
        Provoked(409, "conflict", queued_job=True),
    ],
    ("POST", "/webhooks/test"): [
        NO_TOKEN,
        Provoked(422, "invalid_parameter"),
        Provoked(422, "bad_webhook_url", params={"url": "ftp://example.com/"}),
    ],
    ("GET", "/webhook-secret"): [NO_TOKEN],
    ("POST", "/webhook-secret/rotate"): [NO_TOKEN],
    ("GET", "/account/usage"): [NO_TOKEN],
    ("GET", "/admin/jobs"): [NO_TOKEN, NOT_ADMIN],
    ("GET", "/admin/stats"): [NO_TOKEN, NOT_ADMIN],
}


def techtonique(path: str) -> bool:
    return path == TECHTONIQUE or path.startswith(TECHTONIQUE + "/")


def dashboard(path: str) -> bool:
    return path == DASHBOARD or path.startswith(DASHBOARD + "/")


def concrete(path: str, job_id: str) -> str:
    return path.replace("{job_id}", job_id)


def assert_error_body(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The service's error body: a known code (or an ML core's), a message, any extra fields."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert isinstance(body.get("code"), str) and isinstance(body.get("detail"), str), body
    assert body["detail"].strip()
    assert body["code"] == code if code else body["code"] in CODES
    return body


def assert_fastapi_body(response: Any, status: int) -> dict[str, Any]:
    """FastAPI's own body, as techtonique.net answers: `detail`, a message or the list of errors."""
    assert response.status_code == status, response.text
    body = response.json()
    assert "detail" in body
    if status == 422 and isinstance(body["detail"], list):
        assert set(body) == {"detail"} and all("loc" in error for error in body["detail"])
    else:
        assert isinstance(body["detail"], str)
    return body


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_a_method_the_route_does_not_take_is_a_405_in_the_routes_shape(
    client: TestClient, alice: Account, method: str, path: str
) -> None:
    response = client.request(UNUSED_METHOD, concrete(path, UNKNOWN), headers=alice.headers)
    if dashboard(path):
        assert response.status_code in (404, 405) and response.headers["content-type"].startswith("text/html")
    elif techtonique(path):
        assert assert_fastapi_body(response, 405) == {"detail": "Method Not Allowed"}
    else:
        body = assert_error_body(response, 405, "method_not_allowed")
        assert response.headers["allow"] and "Method Not Allowed" in body["detail"]


PROVOCATIONS = [(method, path, provoked) for (method, path), cases in PROVOKED.items() for provoked in cases]


@pytest.mark.parametrize(
    ("method", "path", "provoked"),
    PROVOCATIONS,
    ids=[f"{m} {p} {c.status} {c.code}" for m, p, c in PROVOCATIONS],
)
def test_each_check_of_a_route_answers_in_its_shape(
    client: TestClient, alice: Account, method: str, path: str, provoked: Provoked
) -> None:
    job_id = make_job(alice.id) if provoked.queued_job else UNKNOWN
    headers = {**(alice.headers if provoked.token else {}), **provoked.headers}
    response = client.request(
        method, concrete(path, job_id), params=provoked.params, headers=headers, files=provoked.files
    )
    if techtonique(path):
        assert_fastapi_body(response, provoked.status)
        return
    body = assert_error_body(response, provoked.status, provoked.code)
    if provoked.code == "invalid_parameter":
        assert body["errors"] and all("loc" in error for error in body["errors"])
        assert body["parameter"] in body["detail"]
    if provoked.status == 401:
        assert response.headers["www-authenticate"] == "Bearer"


def test_every_provoked_route_exists() -> None:
    assert set(PROVOKED) <= set(ROUTES)


def test_an_unknown_path_is_a_404_not_found(client: TestClient) -> None:
    assert_error_body(client.get("/nowhere"), 404, "not_found")
    assert_fastapi_body(client.get(f"{TECHTONIQUE}/nowhere"), 404)


def test_a_bad_parameter_names_it_and_keeps_fastapis_list(client: TestClient, alice: Account) -> None:
    response = client.get("/jobs", params={"limit": 0, "status": "done"}, headers=alice.headers)
    body = assert_error_body(response, 422, "invalid_parameter")
    assert body["parameter"] == "limit"
    assert body["detail"].startswith("limit: Input should be greater than or equal to 1; status: ")
    assert [error["loc"] for error in body["errors"]] == [["query", "limit"], ["query", "status"]]


def test_unusable_data_answers_with_the_ml_cores_code_and_column(client: TestClient, alice: Account) -> None:
    csv = b"a,b,target\n1,x,0\n" + b"2,3,1\n3,4,0\n" * 10  # a text value among numbers
    for mount in ("", TECHTONIQUE):
        response = client.post(
            f"{mount}/gbdtclassification", files={"file": ("d.csv", csv, "text/csv")}, headers=alice.headers
        )
        assert response.status_code == 422, response.text
        body = response.json()
        assert (body["code"], body["column"]) == ("non_numeric", "b") and "'b'" in body["detail"]


def test_an_unhandled_exception_is_a_500_internal_error(service_settings: object) -> None:
    app = create_app()

    def fail() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/boom", fail)
    app.add_api_route(f"{TECHTONIQUE}/boom", fail)
    with TestClient(app, raise_server_exceptions=False) as http:
        body = assert_error_body(http.get("/boom"), 500, "internal_error")
        assert "a bug" not in body["detail"]
        assert assert_fastapi_body(http.get(f"{TECHTONIQUE}/boom"), 500)["detail"] == body["detail"]


def error_schemas(operation: dict[str, Any]) -> dict[str, str]:
    """Each error status of an operation and the component its JSON body refers to."""
    found = {}
    for status, response in operation["responses"].items():
        if status[0] in "45":
            schema = response["content"]["application/json"]["schema"]
            found[status] = schema.get("$ref", "").rsplit("/", 1)[-1]
    return found


def test_the_schema_declares_the_error_body_for_every_route() -> None:
    app = create_app()
    schema = app.openapi()
    assert set(schema["components"]["schemas"]["ErrorBody"]["required"]) == {"code", "detail"}
    documented = [
        r
        for r in iter_route_contexts(app.routes)
        if isinstance(r.original_route, APIRoute) and r.include_in_schema
    ]
    assert len(documented) > 20
    for route in documented:
        for method in route.methods:
            declared = error_schemas(schema["paths"][route.path][method.lower()])
            where = f"{method} {route.path}"
            if techtonique(route.path):
                assert set(declared.values()) == {TechtoniqueErrorBody.__name__}, where
                continue
            assert {"4XX", "5XX"} <= set(declared), where
            expected = {ErrorBody.__name__, "NotReady"} if route.path == "/readyz" else {ErrorBody.__name__}
            assert set(declared.values()) <= expected, (where, declared)
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_every_code_is_snake_case_with_an_error_status() -> None:
    for code, meaning in CODES.items():
        assert code.isidentifier() and code == code.lower(), code
        assert 400 <= meaning.status < 600 and meaning.meaning
