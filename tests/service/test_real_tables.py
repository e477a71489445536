"""Real-shaped tables over real HTTP against the Postgres + Redis stack: a text-labelled target named by
`target=`, an id column, categories and missing values; the result joins back to the uploaded rows, its
feature values come with `include=X_test` and in Parquet, the dashboard colours its beeswarm by them; a
table the request cannot use is a 422 naming the column and the parameter."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from shared.results import formats as results
from tests.contract import explanation
from tests.service.test_dashboard import Browser
from tests.stack import DATA, Client, Stack

pytestmark = [pytest.mark.service]

CUSTOMERS = DATA / "tables" / "customers.csv"
ROLES = {"target": "churned", "id_column": "customer_id"}


@pytest.fixture(scope="module")
def customers_job(alice: Client) -> dict[str, object]:
    response = alice.submit("gbdtclassification", CUSTOMERS.read_bytes(), interpretability="shap", **ROLES)
    assert response.status_code == 202, response.text
    job = alice.wait(response.json()["id"])
    assert job["status"] == "succeeded", job
    return job


def test_a_customers_table_succeeds_and_joins_back_to_its_rows(
    alice: Client, customers_job: dict[str, object]
) -> None:
    result = alice.result(str(customers_job["id"]))
    uploaded = pd.read_csv(CUSTOMERS)
    by_id = uploaded.set_index("customer_id")["churned"]
    assert [by_id[identifier] for identifier in result["test_ids"]] == result["y_true"]
    assert uploaded["churned"].iloc[result["test_rows"]].tolist() == result["y_true"]
    features = [name for name in uploaded.columns if name not in ROLES.values()]
    assert explanation(result, "shap")["feature_names"] == features and "X_test" not in result


def test_the_test_rows_feature_values_come_as_uploaded(
    alice: Client, customers_job: dict[str, object]
) -> None:
    job_id = customers_job["id"]
    with_features = alice.http.get(f"/jobs/{job_id}/result", params={"include": "X_test"}).json()
    rows = pd.read_csv(CUSTOMERS).iloc[with_features["test_rows"]]
    assert with_features["X_test"]["region"] == rows["region"].tolist()
    assert with_features["X_test"]["plan"] == rows["plan"].tolist()
    parquet = alice.http.get(f"/jobs/{job_id}/result", params={"format": "parquet"})
    table = pd.read_parquet(io.BytesIO(parquet.content))
    assert table["X_test_region"].tolist() == rows["region"].tolist()
    assert results.to_result(parquet.content, "parquet") == with_features


def test_the_dashboard_colours_the_beeswarm_by_feature_value(
    stack: Stack, customers_job: dict[str, object]
) -> None:
    browser = Browser(stack, stack.token("tables-root", admin=True))
    page = browser.http.get(f"/dashboard/jobs/{customers_job['id']}")
    assert page.status_code == 200
    assert 'data-testid="legend"' in page.text and 'class="value" fill="#' in page.text


@pytest.mark.parametrize(
    ("endpoint", "params", "code", "words"),
    [
        ("mlclassification", ROLES, "missing_value", ["'age'", "line 6", "impute="]),
        ("gbdtclassification", {"id_column": "customer_id"}, "missing_target", ["'target'", "target="]),
        ("gbdtclassification", {**ROLES, "id_column": "id"}, "missing_id_column", ["'id'", "id_column"]),
    ],
)
def test_a_table_the_request_cannot_use_names_the_column_and_the_parameter(
    alice: Client, endpoint: str, params: dict[str, str], code: str, words: list[str]
) -> None:
    response = alice.submit(endpoint, CUSTOMERS.read_bytes(), **params)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == code
    for word in words:
        assert word in body["detail"]


def test_imputing_lets_every_model_take_the_table(alice: Client) -> None:
    result = alice.run(
        "mlclassification", CUSTOMERS.read_bytes(), impute="median", interpretability="permutation", **ROLES
    )
    assert len(explanation(result, "permutation")["feature_names"]) == 6
