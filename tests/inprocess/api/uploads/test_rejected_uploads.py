"""Refused uploads count against their user's rejected-upload budget: past it, the user's submits are
refused with 429 and Retry-After before their body is read, whatever it holds; accepted uploads and
other users are not charged."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from shared.settings import Settings, get_settings
from tests.inprocess.api.uploads.test_formats import IRIS_CSV, post
from tests.inprocess.factories import Account

NOT_NUMBERS = b"a,target\n1,0\nx,1\n2,0\n"


def test_past_the_budget_of_refused_uploads_a_users_submits_are_429s(
    client: TestClient,
    alice: Account,
    bob: Account,
    service_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One unit a minute drains slowly enough that a loaded machine's slow requests cannot drain it. The
    # settings the code reads now (an earlier test may have rebuilt them from the same environment).
    monkeypatch.setattr(get_settings(), "max_rejected_uploads_per_minute", 1)
    for _ in range(2):
        assert post(client, alice, "data.csv", "text/csv", IRIS_CSV).status_code == 202  # not charged
    answers = [post(client, alice, "data.csv", "text/csv", NOT_NUMBERS) for _ in range(4)]
    codes = [answer.json()["code"] for answer in answers]
    # one refusal fills the budget (a second may pass while the first drains), then 429s
    assert codes[0] == "non_numeric" and codes[2:] == ["rate_limited"] * 2, codes
    limited = post(client, alice, "data.csv", "text/csv", IRIS_CSV)  # a good upload, refused before its body
    assert limited.status_code == 429, limited.text
    body = limited.json()
    assert body["code"] == "rate_limited" and "FITEXPLAIN_MAX_REJECTED_UPLOADS_PER_MINUTE" in body["detail"]
    assert limited.headers["Connection"] == "close"  # the unread body is not drained
    assert 1 <= int(limited.headers["Retry-After"]) <= 61 and body["retry_after"] == int(
        limited.headers["Retry-After"]
    )
    assert post(client, bob, "data.csv", "text/csv", IRIS_CSV).status_code == 202
