"""Bad requests get a 4xx whose message names the problem; nothing reaches a worker."""

from __future__ import annotations

import httpx
import pytest

from api.serialize import MAX_OFFSET
from tests.stack import DATA, Client, Stack

pytestmark = [pytest.mark.service]

GOOD = (DATA / "iris_dataset2.csv").read_bytes()


def detail(response: httpx.Response) -> str:
    return str(response.json()["detail"])


def test_missing_file(alice: Client) -> None:
    response = alice.http.post("/mlclassification")
    assert response.status_code == 422
    assert "file" in response.text


def test_empty_file(alice: Client) -> None:
    response = alice.submit("mlclassification", b"")
    assert response.status_code == 422
    assert "empty" in detail(response).lower()


def test_no_target_column(alice: Client) -> None:
    csv = GOOD.replace(b"target", b"label", 1)
    response = alice.submit("mlclassification", csv)
    assert response.status_code == 422
    assert "target" in detail(response)


def test_unknown_base_model_lists_close_matches(alice: Client) -> None:
    response = alice.submit("mlclassification", GOOD, base_model="RandomForestClasifier")
    assert response.status_code == 422
    assert "RandomForestClassifier" in response.text


def test_import_path_as_base_model_is_refused(alice: Client) -> None:
    response = alice.submit("mlclassification", GOOD, base_model="os.system")
    assert response.status_code == 422


def test_non_numeric_column_is_named(alice: Client) -> None:
    lines = GOOD.decode().splitlines()
    lines[3] = "abc," + lines[3].split(",", 1)[1]
    response = alice.submit("mlclassification", "\n".join(lines).encode())
    assert response.status_code == 422
    assert "sepal length (cm)" in detail(response) and "abc" in detail(response)


def test_unknown_parameter_is_refused(alice: Client) -> None:
    response = alice.submit("gbdtclassification", GOOD, n_hidden_features=3)
    assert response.status_code == 422
    assert "n_hidden_features" in response.text


def test_unknown_value_lists_the_allowed_ones(alice: Client) -> None:
    response = alice.submit("gbdtclassification", GOOD, model_type="randomforest")
    assert response.status_code == 422
    assert "lightgbm" in response.text and "xgboost" in response.text
    response = alice.submit("mlclassification", GOOD, interpretability="lime")
    assert response.status_code == 422
    assert "permutation" in response.text and "shap" in response.text


def test_booleans_in_techtonique_spelling(alice: Client) -> None:
    for spelling in ("True", "False", "true", "false"):
        response = alice.submit(
            "mlregression", (DATA / "boston_dataset2.csv").read_bytes(), return_pi=spelling
        )
        assert response.status_code == 202, response.text
        assert response.json()["params"]["return_pi"] is (spelling.lower() == "true")


def test_missing_or_bad_token(stack: Stack) -> None:
    anonymous = httpx.post(f"{stack.url}/mlclassification", files={"file": ("a.csv", GOOD)})
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    forged = httpx.get(f"{stack.url}/jobs", headers={"Authorization": "Bearer fx_not-a-token"})
    assert forged.status_code == 401


def test_another_users_job_is_not_found(alice: Client, bob: Client) -> None:
    job_id = alice.submit("gbdtclassification", GOOD).json()["id"]
    for method, path in (
        ("GET", f"/jobs/{job_id}"),
        ("GET", f"/jobs/{job_id}/result"),
        ("DELETE", f"/jobs/{job_id}"),
    ):
        assert bob.http.request(method, path).status_code == 404, (method, path)
    assert job_id not in {item["id"] for item in bob.http.get("/jobs").json()["items"]}
    assert alice.wait(job_id)["status"] == "succeeded"


def test_model_that_cannot_fit_fails_with_a_reason(alice: Client) -> None:
    """MultinomialNB refuses negative features: the job fails in the worker, with scikit-learn's reason."""
    lines = GOOD.decode().splitlines()
    negated = [lines[0]] + ["-" + line for line in lines[1:]]
    response = alice.submit(
        "mlclassification", "\n".join(negated).encode(), base_model="MultinomialNB", n_hidden_features=0
    )
    assert response.status_code == 202, response.text
    job = alice.wait(response.json()["id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] != "internal_error" and "negative" in job["error"]["message"].lower()
    result = alice.http.get(f"/jobs/{job['id']}/result")
    assert result.status_code == 409 and "failed" in detail(result)


@pytest.fixture(scope="module")
def admin(stack: Stack) -> Client:
    return Client(stack.url, stack.token("root-pages", admin=True))


@pytest.mark.parametrize("offset", [str(2**63), str(2**63 - 1), str(MAX_OFFSET + 1)])
def test_huge_offsets_are_refused_with_the_limit(alice: Client, admin: Client, offset: str) -> None:
    """They used to reach the database driver and fail there (500 OverflowError)."""
    for client, path in ((alice, "/jobs"), (admin, "/admin/jobs")):
        response = client.http.get(path, params={"offset": offset})
        assert response.status_code == 422, (path, response.text)
        [error] = response.json()["errors"]
        assert error["loc"] == ["query", "offset"] and f"{MAX_OFFSET}" in error["msg"], error


def test_the_largest_offset_is_an_empty_page(alice: Client, admin: Client) -> None:
    for client, path in ((alice, "/jobs"), (admin, "/admin/jobs")):
        page = client.http.get(path, params={"offset": MAX_OFFSET}).json()
        assert page["items"] == [] and page["offset"] == MAX_OFFSET
