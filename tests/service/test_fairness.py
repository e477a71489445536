"""One user cannot take the service from the others: a many-class job is refused as too
costly under the default budget, or, with the budget raised, waits in the large queue while another
user's small job runs at once. Default per-user limits (the stack's test env raises them)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from tests.stack import DATA, Client, Stack, embedded_serve
from tests.waiting import wait_until

pytestmark = [pytest.mark.service, pytest.mark.slow]

DEFAULT_USER_LIMITS = {
    "FITEXPLAIN_MAX_RUNNING_JOBS_PER_USER": "4",
    "FITEXPLAIN_MAX_SUBMISSIONS_PER_MINUTE": "60",
}
MANY_CLASSES_JOB = {  # the most estimators accepted (1,000); more is a 422 for n_estimators alone
    "model_type": "gradientboosting",
    "n_estimators": 1000,
    "max_depth": 16,
    "interpretability": "permutation,shap",
}
ACCEPTANCE_SECONDS = 60  # the other user's job finishes within 60 s of its submission


def many_classes_csv(n_rows: int = 400, n_features: int = 3, n_classes: int = 100) -> bytes:
    """The many-class upload: 400 rows, 3 features, 100 classes of 4 rows (about 10 KB)."""
    rng = np.random.default_rng(12)
    X = rng.normal(size=(n_rows, n_features)).round(4)
    y = np.arange(n_rows) % n_classes
    lines = [",".join([*(f"x{j}" for j in range(n_features)), "target"])]
    lines += [",".join([*map(str, X[r]), str(y[r])]) for r in range(n_rows)]
    return ("\n".join(lines) + "\n").encode()


def boosting_csv(n_rows: int, seed: int) -> bytes:
    """Binary classification data: boosting 1000 trees on 1000 rows takes several seconds here."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, 8)).round(4)
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int)
    lines = [",".join([*(f"x{j}" for j in range(8)), "target"])]
    lines += [",".join([*map(str, X[r]), str(y[r])]) for r in range(n_rows)]
    return ("\n".join(lines) + "\n").encode()


BOOSTING = {"model_type": "gradientboosting", "n_estimators": 1000}


def at(job: dict, field: str) -> datetime:
    return datetime.fromisoformat(str(job[field]))


def seconds_to_finish(job: dict) -> float:
    return (at(job, "finished_at") - at(job, "created_at")).total_seconds()


@pytest.fixture(scope="module")
def default_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`make run`'s defaults: default budget and per-user limits, one worker taking both queues."""
    deployment = Stack(tmp_path_factory.mktemp("fair_default"), extra_env=DEFAULT_USER_LIMITS).setup()
    deployment.start_worker()
    deployment.start_api()
    yield deployment
    deployment.stop()


@pytest.fixture(scope="module")
def raised_budget_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The budget raised so the many-class job is accepted; one small-queue worker, two jobs at a time."""
    env = {**DEFAULT_USER_LIMITS, "FITEXPLAIN_MAX_JOB_SECONDS": "1e9"}
    deployment = Stack(tmp_path_factory.mktemp("fair_raised"), extra_env=env).setup()
    deployment.start_worker(concurrency=2, queue="small")
    deployment.start_api()
    yield deployment
    deployment.stop()


def test_costly_job_is_refused_and_another_users_job_runs_at_once(default_stack: Stack) -> None:
    attacker = Client(default_stack.url, default_stack.token("mallory"))
    other = Client(default_stack.url, default_stack.token("bea"))
    for _ in range(4):
        refused = attacker.submit("gbdtclassification", many_classes_csv(), **MANY_CLASSES_JOB)
        assert refused.status_code == 422, refused.text
        body = refused.json()
        assert body["code"] == "over_budget"
        assert "worker-seconds" in body["detail"] and "budget of 180 s" in body["detail"], body
        assert "n_estimators" in body["detail"], body  # says what to change

    accepted = other.submit("gbdtclassification", "iris_dataset2.csv")
    assert accepted.status_code == 202, accepted.text
    job = accepted.json()
    assert isinstance(job["estimated_seconds"], float) and 0 < job["estimated_seconds"] < 30
    assert job["queue"] == "small"
    done = other.wait(job["id"], timeout=ACCEPTANCE_SECONDS)
    assert done["status"] == "succeeded", done
    assert seconds_to_finish(done) <= ACCEPTANCE_SECONDS
    assert done["estimated_seconds"] == job["estimated_seconds"]
    listed = other.http.get("/jobs").json()["items"][0]
    assert listed["estimated_seconds"] == job["estimated_seconds"] and listed["queue"] == "small"


def test_with_the_budget_raised_large_jobs_wait_in_their_own_queue(raised_budget_stack: Stack) -> None:
    attacker = Client(raised_budget_stack.url, raised_budget_stack.token("mallory"))
    other = Client(raised_budget_stack.url, raised_budget_stack.token("bea"))
    large = []
    for _ in range(4):
        response = attacker.submit("gbdtclassification", many_classes_csv(), **MANY_CLASSES_JOB)
        assert response.status_code == 202, response.text
        assert response.json()["queue"] == "large" and response.json()["estimated_seconds"] > 180
        large.append(response.json()["id"])

    small = other.submit("gbdtclassification", "iris_dataset2.csv").json()
    done = other.wait(small["id"], timeout=ACCEPTANCE_SECONDS)
    assert done["status"] == "succeeded", done
    assert seconds_to_finish(done) <= ACCEPTANCE_SECONDS
    for job_id in large:  # the small queue's worker never took them
        job = attacker.http.get(f"/jobs/{job_id}").json()
        assert job["status"] == "queued" and job["attempts"] == 0, job
        assert attacker.http.delete(f"/jobs/{job_id}").status_code == 200


def test_a_user_with_jobs_running_is_served_after_a_user_with_none(raised_budget_stack: Stack) -> None:
    """Two slots busy with ann's jobs (a short one and a long one); ann then queues a third job and bob
    one: when the short job ends, the free slot takes bob's job although ann's is older (FIFO would not)."""
    ann = Client(raised_budget_stack.url, raised_budget_stack.token("ann"))
    bob = Client(raised_budget_stack.url, raised_budget_stack.token("bob"))
    short = ann.submit("gbdtclassification", boosting_csv(1000, seed=1), **BOOSTING).json()["id"]
    long = ann.submit("gbdtclassification", boosting_csv(3000, seed=2), **BOOSTING).json()["id"]
    for job_id in (short, long):
        wait_for(ann, job_id, lambda job: job["status"] != "queued")
    assert ann.http.get(f"/jobs/{long}").json()["status"] == "running", "the long job ended too soon"

    third = ann.submit("gbdtclassification", "iris_dataset2.csv")
    assert third.status_code == 202, third.text
    bobs = bob.submit("gbdtclassification", "iris_dataset2.csv")
    assert bobs.status_code == 202, bobs.text
    done = bob.wait(bobs.json()["id"], timeout=120)
    assert done["status"] == "succeeded", done
    ann_third = ann.http.get(f"/jobs/{third.json()['id']}").json()
    short_job = ann.wait(short, timeout=120)
    assert at(short_job, "finished_at") > at(ann_third, "created_at"), (
        "both slots must be busy when ann queues"
    )
    started_later = ann_third["started_at"] is None or at(ann_third, "started_at") > at(done, "started_at")
    assert started_later, (ann_third, done)
    for job_id in (long, third.json()["id"]):
        ann.http.delete(f"/jobs/{job_id}")


def wait_for(client: Client, job_id: str, condition: Callable[[dict], bool], timeout: float = 120) -> dict:
    def reached() -> dict | None:
        job = client.http.get(f"/jobs/{job_id}").json()
        return job if condition(job) else None

    return wait_until(reached, timeout, f"job {job_id} to reach the expected state")


# -- fair share by recent use: a stream of one user's jobs does not hold another's back --------------

STREAM = 5  # the first user's jobs, of a few seconds each
STREAM_JOB = {"model_type": "gradientboosting", "n_estimators": 400, "interpretability": "none"}
STREAM_ROWS = 600
NO_RUNNING_LIMIT = {"FITEXPLAIN_MAX_RUNNING_JOBS_PER_USER": "20"}  # the default 4 would refuse the fifth


class TwoUsers:
    """Ann and bob on one deployment, and the job rows of what they submitted (read by their owner)."""

    def __init__(self, url: str, tokens: dict[str, str]) -> None:
        self.clients = {name: Client(url, token) for name, token in tokens.items()}
        self.owner: dict[str, str] = {}

    def submit(self, user: str, csv: bytes, **params: object) -> str:
        response = self.clients[user].submit("gbdtclassification", csv, **params)
        assert response.status_code == 202, response.text
        assert response.json()["queue"] == "small", response.json()  # one queue: the claim orders it
        self.owner[response.json()["id"]] = user
        return str(response.json()["id"])

    def job(self, job_id: str) -> dict:
        return self.clients[self.owner[job_id]].http.get(f"/jobs/{job_id}").json()

    def finished(self, job_id: str) -> dict:
        def done() -> dict | None:
            row = self.job(job_id)
            return row if row["status"] in ("succeeded", "failed", "cancelled") else None

        return wait_until(done, 300, f"job {job_id} to finish")


def assert_a_stream_does_not_hold_back_another_user(users: TwoUsers) -> None:
    """Ann submits a stream of jobs of a few seconds each; once one runs, bob submits two tiny jobs.
    Every job of ann's still queued after bob's submits starts after both of bob's (first come, first
    served would run all of ann's first): start times read from the job rows."""
    anns = [users.submit("ann", boosting_csv(STREAM_ROWS, seed=seed), **STREAM_JOB) for seed in range(STREAM)]
    wait_until(lambda: users.job(anns[0])["status"] == "running", 180, "ann's first job to start")
    iris = (DATA / "iris_dataset2.csv").read_bytes()
    bobs = [users.submit("bob", iris) for _ in range(2)]
    still_queued = [job_id for job_id in anns if users.job(job_id)["status"] == "queued"]
    assert len(still_queued) >= 2, "ann's stream ended before bob submitted: her jobs are too short here"

    rows = {job_id: users.finished(job_id) for job_id in anns + bobs}
    assert all(row["status"] == "succeeded" for row in rows.values()), rows
    bob_started = max(at(rows[job_id], "started_at") for job_id in bobs)
    for job_id in still_queued:
        assert at(rows[job_id], "started_at") > bob_started, (job_id, rows)
    waited = [round(seconds_between(rows[j], "created_at", "started_at"), 1) for j in bobs]
    ahead = sum(seconds_between(rows[j], "started_at", "finished_at") for j in still_queued)
    print(  # the figures of the report; first come, first served adds ann's queued jobs to bob's wait
        f"bob's jobs waited {waited} s; first come, first served: {ahead:.1f} s more "
        f"(ann's {len(still_queued)} jobs queued ahead of his)"
    )


def seconds_between(job: dict, start: str, end: str) -> float:
    return (at(job, end) - at(job, start)).total_seconds()


def test_a_stream_of_jobs_does_not_hold_back_another_user_on_the_stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A worker of the Postgres + Redis stack running one job at a time, as each of `serve`'s does:
    nobody else runs a job when ann's ends, so only her recent use puts bob first."""
    deployment = Stack(tmp_path_factory.mktemp("fair_share"), extra_env=NO_RUNNING_LIMIT).setup()
    try:
        deployment.start_worker(concurrency=1)
        deployment.start_api()
        tokens = {name: deployment.token(name) for name in ("ann", "bob")}
        assert_a_stream_does_not_hold_back_another_user(TwoUsers(deployment.url, tokens))
    finally:
        deployment.stop()


def test_a_stream_of_jobs_does_not_hold_back_another_user_on_serve(tmp_path: Path) -> None:
    """`fitexplain serve` as `make run` starts it (SQLite, one worker per queue)."""
    with embedded_serve(tmp_path, NO_RUNNING_LIMIT, startup=180) as serve:
        tokens = {name: serve.token(name) for name in ("ann", "bob")}
        assert_a_stream_does_not_hold_back_another_user(TwoUsers(serve.url, tokens))
