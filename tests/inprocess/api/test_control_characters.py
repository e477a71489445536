"""A control character in a path parameter, query parameter or form field is a 422 naming the field, in
each part's own shape (the error body, the /techtonique mount's FastAPI body, the dashboard's page);
the per-user call limit of the webhook test route."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.call_rate import CallRate
from shared.limits import RateLimited
from tests.inprocess.factories import Account


@pytest.mark.parametrize("char", ["\x00", "\x01", "\t", "\x1f", "\x7f", "\x85", "\x9f"])
def test_a_control_character_in_a_query_parameter_is_a_422_naming_it(
    client: TestClient, alice: Account, char: str
) -> None:
    response = client.get("/jobs", params={"status": f"queued{char}"}, headers=alice.headers)
    assert response.status_code == 422, response.text
    body = response.json()
    assert (body["code"], body["parameter"]) == ("invalid_parameter", "status")
    assert f"status: contains a control character (U+{ord(char):04X}" in body["detail"]


def test_a_control_character_in_a_path_parameter_is_a_422_naming_it(
    client: TestClient, alice: Account
) -> None:
    response = client.get("/jobs/abc%00def", headers=alice.headers)
    assert response.status_code == 422 and response.json()["parameter"] == "job_id", response.text


def test_the_techtonique_mount_answers_in_fastapis_shape(client: TestClient, alice: Account) -> None:
    response = client.post(
        "/techtonique/gbdtclassification", params={"model_type": "xgboost\x00"}, headers=alice.headers
    )
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["query", "model_type"] and "control character" in error["msg"]


def test_a_control_character_in_a_form_field_is_a_422_page(client: TestClient) -> None:
    response = client.post("/dashboard/sign-in", data={"token": "fx_\x00"})
    assert response.status_code == 422 and "text/html" in response.headers["content-type"]
    assert "token: contains a control character (U+0000" in response.text


def test_ordinary_text_passes(client: TestClient, alice: Account) -> None:
    response = client.get("/jobs", params={"status": "queued"}, headers=alice.headers)
    assert response.status_code == 200, response.text


def test_a_malformed_csrf_token_is_a_403_not_a_500(client: TestClient, alice: Account) -> None:
    client.post("/dashboard/sign-in", data={"token": alice.token})
    for csrf in ("\u00e9" * 64, "short"):
        response = client.post("/dashboard/sign-out", data={"csrf": csrf})
        assert response.status_code == 403 and "CSRF" in response.text, response.text


def test_the_call_rate_counts_each_user_within_a_sliding_minute() -> None:
    rate = CallRate("pings", "FITEXPLAIN_PINGS")
    rate.take(1, limit=2)
    rate.take(1, limit=2)
    rate.take(2, limit=2)  # another user's calls are their own
    with pytest.raises(RateLimited) as refused:
        rate.take(1, limit=2)
    assert 0 < refused.value.retry_after <= 60
    assert "at most 2 a minute (FITEXPLAIN_PINGS)" in refused.value.message
