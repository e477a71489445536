"""Rows for the in-process tests, written through the job store itself, and ways to age them."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from api.endpoint_params import PARAMS_BY_ENDPOINT
from shared.auth import create_token
from shared.db import session_scope
from shared.ml.spec import JobSpec, ModelSpec
from shared.store.jobstore import create_job, result_body
from shared.store.uploads import sha256_hex, store_upload
from shared.tables import FINISHED, Job, JobEvent, JobStatus, User, WebhookDelivery, utcnow
from tests.canonical import canonical
from tests.stack import DATA

IRIS = (DATA / "iris_dataset2.csv").read_bytes()
TINY_GBDT = {"model_type": "lightgbm", "n_estimators": 5, "interpretability": "none"}


@dataclass(frozen=True)
class Account:
    """A user of the in-process API: its id and the header that authenticates it."""

    id: int
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_user(name: str, *, admin: bool = False) -> tuple[int, str]:
    """A user and a fresh API token for it: (user id, token)."""
    with session_scope() as session:
        token = create_token(session, name, admin=admin)
    with session_scope() as session:
        user_id = session.scalar(select(User.id).where(User.name == name))
    assert user_id is not None
    return user_id, token


def make_job(
    user_id: int,
    *,
    endpoint: str = "gbdtclassification",
    params: dict[str, Any] | None = None,
    csv: bytes = IRIS,
    job_id: str | None = None,
    data_filename: str | None = None,
) -> str:
    """A queued job as submit writes it (parameters validated by the endpoint's model); returns its id
    (`job_id` when given)."""
    with session_scope() as session:
        return insert_job(
            session,
            user_id,
            endpoint=endpoint,
            params=params,
            csv=csv,
            job_id=job_id,
            data_filename=data_filename,
        )


def insert_job(
    session: Session,
    user_id: int,
    *,
    endpoint: str = "gbdtclassification",
    params: dict[str, Any] | None = None,
    csv: bytes = IRIS,
    job_id: str | None = None,
    data_filename: str | None = None,
) -> str:
    """`make_job` inside the caller's transaction."""
    validated = PARAMS_BY_ENDPOINT[endpoint].model_validate(params or TINY_GBDT)
    n_rows, n_columns = csv.count(b"\n") - 1, csv.split(b"\n")[0].count(b",") + 1
    digest = sha256_hex(csv)
    store_upload(session, canonical(csv), digest, n_rows, n_columns)
    return create_job(
        session,
        user_id=user_id,
        endpoint=endpoint,
        params=validated.stored(),
        spec=validated.to_spec().to_json(),
        dataset=digest,
        job_id=job_id,
        data_filename=data_filename,
    ).id


def ago(seconds: float) -> datetime:
    return utcnow() - timedelta(seconds=seconds)


def set_job(job_id: str, **values: Any) -> None:
    """Force columns of a job row (to age a heartbeat, a creation time...), bypassing the job store."""
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == job_id).values(**values))


def load_job(job_id: str) -> Job | None:
    with session_scope() as session:
        return session.get(Job, job_id)


def events(job_id: str) -> list[str]:
    with session_scope() as session:
        return list(
            session.scalars(select(JobEvent.event).where(JobEvent.job_id == job_id).order_by(JobEvent.id))
        )


def webhook_outbox(job_id: str) -> list[str]:
    """The event types of the webhook deliveries written for a job (shared.webhooks.outbox)."""
    with session_scope() as session:
        query = select(WebhookDelivery.event_type).where(WebhookDelivery.job_id == job_id)
        return list(session.scalars(query.order_by(WebhookDelivery.id)))


@dataclass
class Jobs:
    """Writes users and jobs in the states a test needs, on the database of `sessions` (the store's tests,
    on SQLite and Postgres each)."""

    sessions: sessionmaker[Session]

    def user(self, name: str) -> int:
        with self.sessions.begin() as session:
            user = User(name=name)
            session.add(user)
            session.flush()
            return user.id

    def job(
        self,
        user_id: int,
        *,
        queue: str = "small",
        status: str = JobStatus.queued,
        age: float = 0.0,
        content: bytes = b"x,target\n1,0\n",
        job_id: str | None = None,
        estimated: float | None = None,
        used: float | None = None,
        finished_age: float | None = None,
    ) -> str:
        """A job on the upload `content`, submitted `age` seconds ago, put straight in `status` (if
        running: a fresh heartbeat; if finished: `finished_age` seconds ago), its id `job_id` when given,
        its cost `estimated` and the worker-seconds it `used` as given."""
        with self.sessions.begin() as session:
            digest = sha256_hex(content)
            store_upload(session, content, digest, content.count(b"\n") - 1, 2)
            job = create_job(
                session,
                user_id=user_id,
                endpoint="gbdtclassification",
                params={},
                spec=JobSpec(model=ModelSpec(task="classification", family="gbdt")).to_json(),
                dataset=digest,
                queue=queue,
                job_id=job_id,
                estimated_seconds=estimated,
            )
            job.created_at = utcnow() - timedelta(seconds=age)
            job.status = status
            job.worker_seconds = used
            if status == JobStatus.running:
                job.attempts, job.heartbeat_at, job.worker = 1, utcnow(), "elsewhere:1"
            if status in FINISHED:
                job.finished_at = utcnow() - timedelta(seconds=finished_age or 0.0)
            return job.id

    def row(self, job_id: str) -> Job:
        with self.sessions() as session:
            job = session.get(Job, job_id)
            assert job is not None
            return job


def stored_result(job_id: str) -> dict[str, Any]:
    """The job's stored result JSON."""
    with session_scope() as session:
        body = result_body(session, job_id)
    assert body is not None
    return orjson.loads(gzip.decompress(body))
