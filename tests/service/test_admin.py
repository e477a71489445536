"""Admin routes, /metrics and retention, against a deployment of their own whose jobs we know exactly."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, func, select, update
from sqlalchemy.orm import Session

from shared.store.retention import purge_expired
from shared.store.uploads import sha256_hex
from shared.tables import Job, JobEvent, JobResult, Upload, utcnow
from tests.stack import DATA, Client, Stack

pytestmark = [pytest.mark.service]

IRIS = (DATA / "iris_dataset2.csv").read_bytes()
BOSTON = (DATA / "boston_dataset2.csv").read_bytes()


def negated(csv: bytes) -> bytes:
    lines = csv.decode().splitlines()
    return "\n".join([lines[0]] + ["-" + line for line in lines[1:]]).encode()


class Deployment:
    """A stack with four jobs of known fate: succeeded, failed, cancelled and (no worker left) queued."""

    def __init__(self, tmp: Path) -> None:
        self.stack = Stack(tmp, extra_env={"FITEXPLAIN_RETENTION_DAYS": "30"}).setup()
        self.stack.start_api()
        self.admin = Client(self.stack.url, self.stack.token("root", admin=True))
        self.dora = Client(self.stack.url, self.stack.token("dora"))
        self.eve = Client(self.stack.url, self.stack.token("eve"))
        self.engine = create_engine(self.stack.database_url)

    def create_jobs(self) -> None:
        self.cancelled = self.eve.submit("mlregression", BOSTON).json()["id"]  # no worker yet: stays queued
        assert self.eve.http.delete(f"/jobs/{self.cancelled}").json()["status"] == "cancelled"
        worker = self.stack.start_worker()
        self.succeeded = self.dora.submit("gbdtclassification", IRIS).json()["id"]
        self.failed = self.dora.submit(
            "mlclassification", negated(IRIS), base_model="MultinomialNB", n_hidden_features=0
        ).json()["id"]
        assert self.dora.wait(self.succeeded)["status"] == "succeeded"
        failed = self.dora.wait(self.failed)
        assert failed["status"] == "failed"
        self.failure_code = failed["error"]["code"]
        # With fair-share claiming a message may run another job than its own: the last message can
        # still wait in Redis after every job finished. Let the worker drain it before stopping it.
        deadline = time.monotonic() + 60
        while samples(httpx.get(f"{self.stack.url}/metrics").text)[("fitexplain_queue_depth", ())]:
            assert time.monotonic() < deadline, "the worker did not drain its queue"
            time.sleep(0.1)
        self.stack.stop_worker(worker)
        self.queued = self.eve.submit("gbdtclassification", IRIS).json()["id"]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    made = Deployment(tmp_path_factory.mktemp("admin"))
    try:
        made.create_jobs()
        yield made
    finally:
        made.engine.dispose()
        made.stack.stop()


def test_admin_lists_every_users_jobs_newest_first(deployment: Deployment) -> None:
    page = deployment.admin.http.get("/admin/jobs").json()
    assert page["total"] == 4
    assert [item["id"] for item in page["items"]] == [
        deployment.queued,
        deployment.failed,
        deployment.succeeded,
        deployment.cancelled,
    ]
    assert {item["user"] for item in page["items"]} == {"dora", "eve"}


def test_admin_filters_and_pages(deployment: Deployment) -> None:
    http = deployment.admin.http
    dora = http.get("/admin/jobs", params={"user": "dora"}).json()
    assert dora["total"] == 2 and {item["id"] for item in dora["items"]} == {
        deployment.succeeded,
        deployment.failed,
    }
    failed = http.get("/admin/jobs", params={"status": "failed"}).json()
    assert [(item["id"], item["user"]) for item in failed["items"]] == [(deployment.failed, "dora")]
    assert failed["items"][0]["error"]["code"] == deployment.failure_code
    assert http.get("/admin/jobs", params={"user": "nobody"}).json()["total"] == 0
    pages = [http.get("/admin/jobs", params={"limit": 1, "offset": k}).json() for k in range(5)]
    assert [len(p["items"]) for p in pages] == [1, 1, 1, 1, 0] and all(p["total"] == 4 for p in pages)
    assert len({p["items"][0]["id"] for p in pages[:4]}) == 4
    assert http.get("/admin/jobs", params={"status": "exploded"}).status_code == 422


def test_admin_stats_count_by_status(deployment: Deployment) -> None:
    stats = deployment.admin.http.get("/admin/stats").json()
    expected = {"queued": 1, "running": 0, "succeeded": 1, "failed": 1, "cancelled": 1}
    assert stats == {"jobs_by_status": expected, "total": 4, "users": 3}


def test_the_old_admin_page_points_to_the_dashboard(deployment: Deployment) -> None:
    response = httpx.get(f"{deployment.stack.url}/admin")  # public; the dashboard asks to sign in
    assert response.status_code == 308 and response.headers["location"] == "/dashboard"


def test_readyz_says_when_no_worker_is_alive(deployment: Deployment) -> None:
    response = httpx.get(f"{deployment.stack.url}/readyz")
    assert response.status_code == 200  # the API still accepts and stores jobs
    body = response.json()
    assert body["ready"] is True and body["workers_alive"] == 0
    assert body["notes"] == ["no worker is alive: jobs wait in the queue until one starts"]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_parse_and_match_the_jobs(deployment: Deployment) -> None:
    response = httpx.get(f"{deployment.stack.url}/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)
    for status, count in {"queued": 1, "running": 0, "succeeded": 1, "failed": 1, "cancelled": 1}.items():
        assert found[("fitexplain_jobs", (("status", status),))] == count
    assert found[("fitexplain_job_failures", (("code", deployment.failure_code),))] == 1
    assert found[("fitexplain_queue_depth", ())] == 1  # the queued job's message, waiting in Redis
    assert found[("fitexplain_workers_alive", ())] == 0  # the worker was stopped (and unregistered)
    assert found[("fitexplain_job_duration_seconds_count", ())] == 2  # the cancelled job never started
    assert found[("fitexplain_job_duration_seconds_bucket", (("le", "+Inf"),))] == 2
    assert 0 < found[("fitexplain_job_duration_seconds_sum", ())] < 600


def backdate(session: Session, job_id: str, days: float) -> None:
    moment = utcnow() - timedelta(days=days)
    session.execute(update(Job).where(Job.id == job_id).values(created_at=moment, finished_at=moment))


def count(session: Session, model: type, *where: object) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def test_retention_deletes_old_finished_jobs_and_unused_uploads(deployment: Deployment) -> None:
    d = deployment
    with Session(d.engine) as session:
        for job_id in (d.succeeded, d.cancelled, d.queued):
            backdate(session, job_id, days=40)
        backdate(session, d.failed, days=20)
        session.commit()
        iris = session.get(Job, d.succeeded).dataset_sha256
        assert session.get(Upload, sha256_hex(BOSTON)) is None  # the cancelled job released it at once

        assert purge_expired(session, retention_days=30) == {
            "jobs": 2,
            "results": 1,
            "datasets": 0,
            "models": 1,  # the succeeded job's
        }
        session.commit()

        remaining = set(session.scalars(select(Job.id)))
        assert remaining == {d.failed, d.queued}  # too recent; not finished, however old
        assert session.get(Upload, iris) is not None  # the queued job still needs it
        assert count(session, JobResult, JobResult.job_id == d.succeeded) == 0
        assert count(session, JobEvent, JobEvent.job_id.in_([d.succeeded, d.cancelled])) == 0
        assert purge_expired(session, retention_days=30) == {
            "jobs": 0,
            "results": 0,
            "datasets": 0,
            "models": 0,
        }
    assert d.dora.http.get(f"/jobs/{d.succeeded}").status_code == 404
    assert d.dora.http.get(f"/jobs/{d.failed}").status_code == 200


def test_the_api_purges_soon_after_it_starts(deployment: Deployment) -> None:
    """The sweep loop runs the purge at its first pass, then hourly: a restarted API purges at once."""
    d = deployment
    with Session(d.engine) as session:
        backdate(session, d.failed, days=31)
        session.commit()
    assert d.stack.api is not None
    d.stack.api.terminate()
    d.stack.api.wait(timeout=15)
    d.stack.start_api()
    deadline = time.monotonic() + 30
    with Session(d.engine) as session:
        while session.get(Job, d.failed, populate_existing=True) is not None and time.monotonic() < deadline:
            session.rollback()
            time.sleep(0.2)  # polling for the outcome, as Client.wait does; nothing is timed
        assert session.get(Job, d.failed, populate_existing=True) is None
        assert session.get(Job, d.queued) is not None
