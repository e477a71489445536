"""The webhook outbox's SQL, in process on the in-process tier's Postgres: every finishing transition
writes its delivery in the same transaction, a due delivery is claimed by one dispatcher only, and a
settle after the lease ran out changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from shared.db import get_sessionmaker
from shared.ml.spec import JobSpec, ModelSpec
from shared.settings import Settings
from shared.store.jobstore import cancel, claim, fail, requeue_stale, succeed
from shared.tables import Job, JobStatus, Upload, User, WebhookAttempt, WebhookDelivery, utcnow
from shared.webhooks.delivery import rotate_secret, signed_request, signing_secrets, user_secret
from shared.webhooks.outbox import (
    AttemptOutcome,
    RedeliveryRefused,
    claim_due,
    next_delay,
    redeliver,
    result_summary,
    settle,
)

URL = "https://receiver.example/hook"


@pytest.fixture
def session(service_settings: Settings) -> Iterator[Session]:
    with get_sessionmaker()() as session:
        session.add(User(id=1, name="alice"))
        session.add(
            Upload(sha256="d" * 64, blob_key="uploads/d/x.parquet", size_bytes=1, n_rows=150, n_columns=4)
        )
        session.commit()
        yield session


def new_job(session: Session, webhook: str | None = URL, **fields: object) -> str:
    params = {"webhook_url": webhook} if webhook else {}
    spec = JobSpec(model=ModelSpec(task="classification", family="gbdt")).to_json()
    job = Job(
        user_id=1,
        endpoint="gbdtclassification",
        params=params,
        spec=spec,
        dataset_sha256="d" * 64,
        **fields,
    )
    session.add(job)
    session.commit()
    return job.id


def outbox(session: Session, job_id: str) -> list[WebhookDelivery]:
    return list(session.scalars(select(WebhookDelivery).where(WebhookDelivery.job_id == job_id)))


def test_each_finishing_transition_writes_one_delivery(session: Session) -> None:
    done = new_job(session)
    assert claim(session, done, worker="w", stale_after=60, max_attempts=3).job is not None
    assert outbox(session, done) == []
    assert succeed(session, done, "w", {"accuracy": 0.5})
    (delivery,) = outbox(session, done)
    assert delivery.event_type == "job.succeeded" and delivery.message_id == f"{done}-succeeded"
    assert delivery.payload["data"]["summary"]["accuracy"] == 0.5
    assert delivery.payload["data"]["summary"]["rows"] == 150
    assert not succeed(session, done, "w", {"accuracy": 0.5})  # a second finish writes nothing
    assert len(outbox(session, done)) == 1

    failed = new_job(session, status=JobStatus.running, worker="w")
    assert fail(session, failed, "internal_error", "boom", worker="w")
    assert [d.event_type for d in outbox(session, failed)] == ["job.failed"]

    cancelled = new_job(session)
    assert cancel(session, cancelled)
    assert [d.event_type for d in outbox(session, cancelled)] == ["job.cancelled"]

    silent = new_job(session, webhook=None)
    assert cancel(session, silent)
    assert outbox(session, silent) == []


def test_jobs_failed_as_worker_lost_get_their_delivery(session: Session) -> None:
    stale = utcnow() - timedelta(minutes=5)
    swept = new_job(session, status=JobStatus.running, attempts=3, heartbeat_at=stale)
    _, failed = requeue_stale(session, stale_after=60, max_attempts=3)
    assert failed == [swept]
    assert outbox(session, swept)[0].payload["data"]["error"]["code"] == "worker_lost"

    exhausted = new_job(session, status=JobStatus.queued, attempts=3)
    outcome = claim(session, exhausted, worker="w", stale_after=60, max_attempts=3)
    assert outcome.reason == "attempts exhausted"
    assert [d.event_type for d in outbox(session, exhausted)] == ["job.failed"]


def test_a_due_delivery_is_claimed_once_and_a_late_settle_changes_nothing(session: Session) -> None:
    job_id = new_job(session)
    cancel(session, job_id)
    session.commit()
    (first,) = claim_due(session, lease_seconds=30, limit=10)
    assert claim_due(session, lease_seconds=30, limit=10) == []  # leased: not due for anyone else
    session.commit()

    # The lease runs out (the first dispatcher was killed): another claims the row.
    session.execute(update(WebhookDelivery).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    (second,) = claim_due(session, lease_seconds=30, limit=10)
    assert second.claim_token != first.claim_token and second.message_id == first.message_id
    refused = AttemptOutcome("1.2.3.4", None, 5.0, "ConnectError", None)
    assert settle(session, first, refused, schedule=(1.0,)) is None  # not ours any more
    assert outbox(session, job_id)[0].attempts == 0
    ok = AttemptOutcome("1.2.3.4", 204, 5.0, None, "")
    assert settle(session, second, ok, schedule=(1.0,)) == "delivered"
    assert len(session.scalars(select(WebhookAttempt)).all()) == 2  # both attempts are on record


def test_retries_follow_the_schedule_then_fail_for_good(session: Session) -> None:
    job_id = new_job(session)
    cancel(session, job_id)
    session.commit()
    refused = AttemptOutcome(None, 500, 5.0, None, "no")
    for attempt, expected in ((1, "pending"), (2, "failed")):
        session.execute(update(WebhookDelivery).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
        (due,) = claim_due(session, lease_seconds=30, limit=10)
        assert due.attempt == attempt
        assert settle(session, due, refused, schedule=(10.0,)) == expected
    (delivery,) = outbox(session, job_id)
    assert delivery.attempts == 2 and delivery.last_status == 500


def test_redeliver(session: Session) -> None:
    running = new_job(session, status=JobStatus.running, worker="w")
    with pytest.raises(RedeliveryRefused, match="running"):
        redeliver(session, running, "alice")
    fail(session, running, "internal_error", "boom", worker="w")
    pending = redeliver(session, running, "alice")  # still pending: made due, not doubled
    assert len(outbox(session, running)) == 1 and pending.requested_by is None
    session.execute(update(WebhookDelivery).values(status="delivered"))
    again = redeliver(session, running, "admin:bob")
    assert again.requested_by == "admin:bob" and again.message_id == f"{running}-failed"
    assert len(outbox(session, running)) == 2
    without = new_job(session, webhook=None)
    cancel(session, without)
    with pytest.raises(RedeliveryRefused, match="without a webhook_url"):
        redeliver(session, without, "alice")


def test_summary_and_retry_schedule_units() -> None:
    assert result_summary({"accuracy": 0.9, "Score": {}}) == {"accuracy": 0.9}
    assert result_summary({"Score": {"R² Score": 0.5}}) == {"r2": 0.5}
    assert result_summary(None) == {}
    assert result_summary({"Score": {"R² Score": float("nan")}}) == {"r2": None}
    schedule = (5.0, 30.0)
    assert 4.0 <= next_delay(schedule, 1) <= 6.0  # type: ignore[operator]
    assert 24.0 <= next_delay(schedule, 2) <= 36.0  # type: ignore[operator]
    assert next_delay(schedule, 3) is None


def test_the_previous_secret_signs_only_during_the_overlap(session: Session) -> None:
    user = session.get(User, 1)
    assert user is not None
    old = user_secret(session, user)
    new, until = rotate_secret(session, user, overlap_seconds=60)
    assert new != old and until > utcnow()
    assert signing_secrets(session, user) == [new, old]
    body, headers = signed_request(signing_secrets(session, user), "m1", {"a": 1})
    assert Webhook(old).verify(body, headers) == Webhook(new).verify(body, headers) == {"a": 1}
    user.webhook_secret_previous_until = utcnow() - timedelta(seconds=1)
    assert signing_secrets(session, user) == [new]
    body, headers = signed_request(signing_secrets(session, user), "m2", {"a": 2})
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(body, headers)
