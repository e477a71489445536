"""The in-process tier: the real code against a real Postgres and Redis, with no process started.

One fresh database per test run, migrated here with Alembic; every test starts from empty tables (the
code under test commits in sessions of its own, so a rollback could not undo it: the rows are deleted).
The service is configured only through FITEXPLAIN_* variables, set before any cached settings or engine
is built and restored (caches cleared) when this package's tests end: the slow tier's subprocesses, whose
environment is copied from os.environ by tests/stack.Stack.env(), never see them.

The one seam replaced is the broker send (`Celery.send_task`): a recorder keeps each message.

The subpackages mirror the code's (api, store, dispatch, webhooks, blobs, worker); tests of a flat
`shared` module sit here at the top. The store's SQL is also tested on a fresh SQLite and Postgres
database each (`sessions`, `jobs`).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from shared import db, settings
from shared.db import make_engine
from shared.dispatch import queue
from shared.settings import Settings
from shared.store.migrate import migrate
from shared.tables import Base
from tests.databases import PG_ADMIN_DSN, create_database, create_migrated_database, drop_database
from tests.inprocess.factories import Account, Jobs, make_user
from tests.inprocess.recorder import PublishRecorder
from tests.stack import REDIS_URL, purge_queue

CACHED = (settings.get_settings, db.get_engine, db.get_sessionmaker, queue.get_celery)


def forget_cached_service() -> None:
    """Drop every cached settings object, engine and Celery app, so the next use reads the environment."""
    if db.get_engine.cache_info().currsize:
        db.get_engine().dispose()
    for cached in CACHED:
        cached.cache_clear()


@pytest.fixture(scope="package")
def service_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A fresh, migrated database and the settings that point at it, for this package's tests only."""
    name = f"fx_fast_{uuid.uuid4().hex[:10]}"
    database_url = create_migrated_database(name)
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as connection:  # a throw-away database: no fsync wait
        connection.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    home: Path = tmp_path_factory.mktemp("inprocess-home")
    with pytest.MonkeyPatch.context() as patch:
        for key in list(os.environ):
            if key.startswith("FITEXPLAIN_") and not key.startswith("FITEXPLAIN_TEST_"):
                patch.delenv(key)  # the developer's own settings must not change what these tests see
        patch.setenv("FITEXPLAIN_DATABASE_URL", database_url)
        patch.setenv("FITEXPLAIN_BROKER_URL", REDIS_URL)
        patch.setenv("FITEXPLAIN_QUEUE", name)
        patch.setenv("FITEXPLAIN_HOME", str(home))
        patch.setenv("FITEXPLAIN_SWEEP_SECONDS", "3600")  # no background sweep: tests call sweep()
        patch.setenv("FITEXPLAIN_HEARTBEAT_SECONDS", "0.2")
        patch.chdir(home)  # pydantic-settings reads ./.env: the repository's must not leak in either
        forget_cached_service()
        try:
            yield settings.get_settings()
        finally:
            forget_cached_service()
            purge_queue(name)
            drop_database(name)
    forget_cached_service()  # again, now that the environment is restored


@pytest.fixture(autouse=True)
def empty_tables(service_settings: Settings) -> None:
    """Every test starts from empty tables; a lock wait (a session left open) fails instead of hanging.

    DELETE, children first: on tables this small it is ~30 times faster than TRUNCATE.
    """
    with db.get_engine().begin() as connection:
        connection.execute(text("SET LOCAL lock_timeout = '5s'"))
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())


@pytest.fixture(autouse=True)
def published(service_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> PublishRecorder:
    """Every message the code would send to the broker, kept instead of sent."""
    recorder = PublishRecorder()
    monkeypatch.setattr("celery.Celery.send_task", recorder.send_task)
    return recorder


@pytest.fixture
def broker(service_settings: Settings) -> Iterator[redis.Redis]:
    """The real Redis the service checks for lost queues (the outbox marker), cleaned after the test."""
    client = redis.Redis.from_url(service_settings.broker_url)
    purge_queue(service_settings.queue)
    yield client
    purge_queue(service_settings.queue)
    client.close()


_last_app: list[tuple[Settings, FastAPI]] = []


def app_for_current_settings() -> FastAPI:
    """The application built for the settings in force, reused while they stay the same object: its first
    request builds the middleware stack, ~60 ms that a test changing no setting need not pay again."""
    from api.main import create_app  # imported here, once the settings it reads are in place

    current = settings.get_settings()
    if not _last_app or _last_app[0][0] is not current:
        _last_app[:] = [(current, create_app())]
    return _last_app[0][1]


@pytest.fixture
def client(service_settings: Settings) -> Iterator[TestClient]:
    """The real application in this process (without its lifespan: no background sweep)."""
    # not entered as a context manager: that would run the lifespan
    http = TestClient(app_for_current_settings())
    yield http
    http.close()


# alice and bob override tests/conftest.py's clients of a running stack: no process is started here.
@pytest.fixture
def alice() -> Account:
    return Account(*make_user("alice"))


@pytest.fixture
def bob() -> Account:
    return Account(*make_user("bob"))


@pytest.fixture
def admin() -> Account:
    return Account(*make_user("root", admin=True))


# The store's tests run on a fresh database of each kind the service supports, beside the tier's own.
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


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database file at the latest schema, migrated once per test process and copied by tests."""
    path = tmp_path_factory.mktemp("migrated") / "store.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def migrated_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a new database of each kind the service supports, at the latest schema (a copy of one
    migrated once: the migrations themselves are tested on `empty_database`)."""
    if request.param == "sqlite":
        path = tmp_path / "store.db"
        shutil.copyfile(request.getfixturevalue("migrated_sqlite"), path)
        yield f"sqlite:///{path}"
        return
    name = f"fx_store_{uuid.uuid4().hex[:10]}"
    try:
        yield create_migrated_database(name)
    finally:
        drop_database(name)


@pytest.fixture
def sessions(migrated_database: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on a new database of each kind the service supports, at the latest schema."""
    engine = make_engine(migrated_database)
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()


@pytest.fixture
def jobs(sessions: sessionmaker[Session]) -> Jobs:
    return Jobs(sessions)


@pytest.fixture(scope="module")
def run_job() -> Iterator[Callable[[str], str]]:
    """The Celery task's function (importing worker/ loads the ML stack: once per module).

    Jobs compute in a child forked from this test process; it is stopped after the module, so that it
    does not hold the test process's inherited pipes (Playwright's, for one) open until the end.
    """
    from worker.tasks import executor, run_job

    yield run_job
    executor().close()
    executor.cache_clear()
