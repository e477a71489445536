"""Routing by estimated cost: the threshold decides small or large, and every publication of a job
(submit, the sweep's republish, a requeue) lands in its queue's real Redis list."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import update

from shared import db
from shared.dispatch import queue
from shared.dispatch.publish import dispatch, sweep
from shared.dispatch.routing import broker_queue, queue_for_cost
from shared.settings import Settings, get_settings
from shared.store.migrate import migrate
from shared.tables import Job, JobStatus, utcnow
from tests.inprocess.factories import Jobs
from tests.stack import REDIS_URL


def test_jobs_above_the_threshold_are_large() -> None:
    settings = Settings(_env_file=None, large_job_seconds=30)
    assert queue_for_cost(0.2, settings) == "small"
    assert queue_for_cost(30.0, settings) == "small"
    assert queue_for_cost(30.01, settings) == "large"
    assert broker_queue("small", settings) == settings.queue
    assert broker_queue("large", settings) == settings.large_queue == f"{settings.queue}.large"


@pytest.fixture
def published() -> None:
    """These tests publish to the real Redis: the tier's recorder of broker sends is not installed."""


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Jobs, str]]:
    """Settings of a deployment with its own SQLite database and Redis queue names, caches reset."""
    name = f"fx_route_{uuid.uuid4().hex[:10]}"
    url = f"sqlite:///{tmp_path / 'route.db'}"
    for key, value in {
        "FITEXPLAIN_DATABASE_URL": url,
        "FITEXPLAIN_BROKER_URL": REDIS_URL,
        "FITEXPLAIN_QUEUE": name,
        "FITEXPLAIN_HOME": str(tmp_path),
    }.items():
        monkeypatch.setenv(key, value)
    caches = (get_settings, queue.get_celery, db.get_engine, db.get_sessionmaker)
    for cache in caches:
        cache.cache_clear()
    migrate(url)
    queue.broker_lost_messages()  # sets the queue's marker, as the first sweep of a deployment does
    yield Jobs(db.get_sessionmaker()), name
    db.get_engine().dispose()
    for cache in caches:
        cache.cache_clear()
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"*{name}*"):
        client.delete(key)


def queued_messages(name: str) -> dict[str, int]:
    client = redis.Redis.from_url(REDIS_URL)
    return {"small": client.llen(name), "large": client.llen(f"{name}.large")}


def test_publish_and_republish_go_to_the_jobs_queue(service: tuple[Jobs, str]) -> None:
    jobs, name = service
    alice = jobs.user("alice")
    small, large = jobs.job(alice, queue="small", age=10), jobs.job(alice, queue="large", age=10)
    assert dispatch(small, "small") and dispatch(large, "large")
    assert queued_messages(name) == {"small": 1, "large": 1}

    # a worker lost while running the large job: the sweep requeues it and publishes it to the large queue
    with jobs.sessions.begin() as session:
        session.execute(
            update(Job)
            .where(Job.id == large)
            .values(status=JobStatus.running, attempts=1, heartbeat_at=utcnow() - timedelta(hours=1))
        )
    assert sweep() == {"requeued": 1, "dispatched": 1}
    assert queued_messages(name) == {"small": 1, "large": 2}
    assert jobs.row(large).status == JobStatus.queued and jobs.row(large).dispatched_at is not None
