"""In-process tests of the job store's SQL: a migrated database (SQLite and a fresh Postgres database),
rows written directly, each state change called as the API and the workers call it. No processes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from shared.db import make_engine
from shared.ml.spec import JobSpec, ModelSpec
from shared.store.jobstore import create_job
from shared.store.migrate import migrate
from shared.store.uploads import sha256_hex, store_upload
from shared.tables import Job, JobStatus, User, utcnow
from tests.stack import create_database, drop_database


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a new, empty database of each kind the service supports."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    name = f"fx_store_{uuid.uuid4().hex[:10]}"
    try:
        yield create_database(name)
    finally:
        drop_database(name)


@pytest.fixture
def sessions(empty_database: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on a freshly migrated database of each kind the service supports."""
    migrate(empty_database)
    engine = make_engine(empty_database)
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()


@dataclass
class Jobs:
    """Writes users and jobs in the states a test needs."""

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
    ) -> str:
        """A job on the upload `content`, submitted `age` seconds ago, put straight in `status` (if
        running: a fresh heartbeat)."""
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
            )
            job.created_at = utcnow() - timedelta(seconds=age)
            job.status = status
            if status == JobStatus.running:
                job.attempts, job.heartbeat_at, job.worker = 1, utcnow(), "elsewhere:1"
            return job.id

    def row(self, job_id: str) -> Job:
        with self.sessions() as session:
            job = session.get(Job, job_id)
            assert job is not None
            return job


@pytest.fixture
def jobs(sessions: sessionmaker[Session]) -> Jobs:
    return Jobs(sessions)
