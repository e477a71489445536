"""Per-user limits (unfinished jobs, submissions per minute) answer 429 with Retry-After; a job that runs
past the soft time limit fails with code `time_limit` and a message that names the limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from tests.stack import DATA, Client, Stack

pytestmark = [pytest.mark.service]

IRIS = (DATA / "iris_dataset2.csv").read_bytes()
MAX_UNFINISHED = 2
MAX_PER_MINUTE = 4
SOFT_LIMIT = 2


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """No worker until the time-limit test: until then every accepted job stays queued (unfinished)."""
    stack = Stack(
        tmp_path_factory.mktemp("limited"),
        extra_env={
            "FITEXPLAIN_MAX_RUNNING_JOBS_PER_USER": str(MAX_UNFINISHED),
            "FITEXPLAIN_MAX_SUBMISSIONS_PER_MINUTE": str(MAX_PER_MINUTE),
            "FITEXPLAIN_SOFT_TIME_LIMIT": str(SOFT_LIMIT),
            "FITEXPLAIN_HARD_TIME_LIMIT": "4",
            "FITEXPLAIN_VISIBILITY_TIMEOUT": "10",
        },
    ).setup()
    stack.start_api()
    yield stack
    stack.stop()


def user(stack: Stack, name: str) -> Client:
    return Client(stack.url, stack.token(name))


def assert_rate_limited(response: httpx.Response, setting: str) -> int:
    assert response.status_code == 429, response.text
    assert setting in response.json()["detail"]
    retry_after = int(response.headers["retry-after"])
    assert retry_after > 0
    return retry_after


def job_count(client: Client) -> int:
    return int(client.http.get("/jobs").json()["total"])


def test_unfinished_jobs_are_limited_per_user(limited: Stack) -> None:
    una, vic = user(limited, "una"), user(limited, "vic")
    accepted = [una.submit("gbdtclassification", IRIS) for _ in range(MAX_UNFINISHED)]
    assert [r.status_code for r in accepted] == [202] * MAX_UNFINISHED
    assert_rate_limited(una.submit("gbdtclassification", IRIS), "FITEXPLAIN_MAX_RUNNING_JOBS_PER_USER")
    assert job_count(una) == MAX_UNFINISHED  # the refused submission left no job behind
    assert vic.submit("gbdtclassification", IRIS).status_code == 202  # others are not affected
    una.http.delete(f"/jobs/{accepted[0].json()['id']}")  # cancelling one frees a place
    assert una.submit("gbdtclassification", IRIS).status_code == 202


def test_submissions_per_minute_are_limited_per_user(limited: Stack) -> None:
    wes = user(limited, "wes")
    for _ in range(MAX_PER_MINUTE):
        response = wes.submit("gbdtclassification", IRIS)
        assert response.status_code == 202, response.text
        wes.http.delete(f"/jobs/{response.json()['id']}")  # stay under the unfinished-jobs limit
    retry_after = assert_rate_limited(
        wes.submit("gbdtclassification", IRIS), "FITEXPLAIN_MAX_SUBMISSIONS_PER_MINUTE"
    )
    assert retry_after <= 60
    assert job_count(wes) == MAX_PER_MINUTE


def test_parallel_submissions_do_not_slip_past_the_limit(limited: Stack) -> None:
    """A hostile client fires many submissions at once: the check and the insert must not race."""
    xena = user(limited, "xena")
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda _: xena.submit("gbdtclassification", IRIS), range(8)))
    for response in responses:  # leave nothing queued for the next test's worker
        if response.status_code == 202:
            xena.http.delete(f"/jobs/{response.json()['id']}")
    codes = [response.status_code for response in responses]
    assert set(codes) <= {202, 429}
    assert codes.count(202) <= MAX_UNFINISHED, codes


def slow_csv(n_rows: int = 20_000, n_features: int = 20) -> bytes:
    """About 10 s of gradient boosting (single-threaded in scikit-learn): far past a 2 s limit."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n_rows, n_features)).round(2)
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int)
    header = ",".join([f"x{j}" for j in range(n_features)] + ["target"])
    rows = (",".join([*map(str, row), str(label)]) for row, label in zip(X, y, strict=True))
    return "\n".join([header, *rows]).encode()


def test_job_past_the_soft_time_limit_fails_with_time_limit(limited: Stack) -> None:
    limited.start_worker()
    tim = user(limited, "tim")
    response = tim.submit("gbdtclassification", slow_csv(), model_type="gradientboosting")
    assert response.status_code == 202, response.text
    job = tim.wait(response.json()["id"], timeout=180)
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "time_limit"
    assert f"{SOFT_LIMIT} s" in job["error"]["message"]
    assert "FITEXPLAIN_SOFT_TIME_LIMIT" in job["error"]["message"]
    assert job["attempts"] == 1  # failed once and for all, not retried
    result = tim.http.get(f"/jobs/{job['id']}/result")
    assert result.status_code == 409 and "time_limit" in result.json()["detail"]
