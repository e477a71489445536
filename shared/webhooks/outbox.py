"""The webhook outbox: deliveries written with the job's last transition, claimed and settled by dispatchers.

A delivery row is added in the same transaction that moves a job to succeeded, failed or cancelled, so a
finished job with a webhook always has one, whatever dies afterwards. Dispatchers claim due rows with a
conditional UPDATE that pushes `next_attempt_at` ahead by a lease (two dispatchers never send the same
attempt) and settle them with another that checks their claim token.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shared.db import rows_changed
from shared.tables import (
    FINISHED,
    DeliveryStatus,
    Job,
    JobEvent,
    Upload,
    User,
    WebhookAttempt,
    WebhookDelivery,
    utcnow,
)

EXCERPT_CHARS = 1024


class RedeliveryRefused(Exception):
    """The job cannot be redelivered (not finished, or it asked for no webhook); the message says why."""


def message_id(job: Job) -> str:
    """The `webhook-id` of a job's finishing event: the same on every attempt and every redelivery."""
    return f"{job.id}-{job.status}"


def result_summary(result: dict[str, Any] | None) -> dict[str, float | None]:
    """Accuracy (classification) or R² (regression) from a result, for receivers that skip fetching it."""
    if not result:
        return {}
    if "accuracy" in result:
        return {"accuracy": _finite(result["accuracy"])}
    score = result.get("Score")
    if isinstance(score, dict) and "R² Score" in score:
        return {"r2": _finite(score["R² Score"])}
    return {}


def _finite(value: Any) -> float | None:
    """A plain float for the JSON column (NumPy scalars and NaN are not JSON)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def finished_payload(session: Session, job: Job, result: dict[str, Any] | None = None) -> dict[str, Any]:
    """The event body: the job's status, error and a short summary (score, rows, run time)."""
    error = {"code": job.error_code, "message": job.error_message} if job.error_code else None
    rows = session.scalar(select(Upload.n_rows).where(Upload.sha256 == job.dataset_sha256))
    run_seconds = None
    if job.started_at is not None and job.finished_at is not None:
        run_seconds = round(max((job.finished_at - job.started_at).total_seconds(), 0.0), 3)
    return {
        "type": f"job.{job.status}",
        "timestamp": utcnow().isoformat(),
        "data": {
            "id": job.id,
            "endpoint": job.endpoint,
            "status": job.status,
            "error": error,
            "summary": {**result_summary(result), "rows": rows, "run_seconds": run_seconds},
            "finished_at": job.finished_at.isoformat() if job.finished_at else None,
            "links": {"self": f"/jobs/{job.id}", "result": f"/jobs/{job.id}/result"},
        },
    }


def enqueue_finished(
    session: Session, job_id: str, result: dict[str, Any] | None = None, *, job: Job | None = None
) -> None:
    """Add the outbox row of a job that has just finished, if it asked for a webhook.

    Call inside the transaction of the transition (jobstore does), after the job's UPDATE; `job` is the
    row that UPDATE returned, if it did (else it is read again).
    """
    if job is None:
        job = session.get(Job, job_id, populate_existing=True)
    if job is None or not job.params.get("webhook_url"):
        return
    _add_delivery(session, job, finished_payload(session, job, result), requested_by=None)


def _add_delivery(
    session: Session, job: Job, payload: dict[str, Any], requested_by: str | None
) -> WebhookDelivery:
    delivery = WebhookDelivery(
        job_id=job.id,
        event_type=payload["type"],
        message_id=message_id(job),
        url=job.params["webhook_url"],
        payload=payload,
        status=DeliveryStatus.pending,
        next_attempt_at=utcnow(),
        attempts=0,
        requested_by=requested_by,
    )
    session.add(delivery)
    session.flush()
    return delivery


def redeliver(session: Session, job_id: str, actor: str) -> WebhookDelivery:
    """Send a finished job's webhook again (same `webhook-id`, same body), on behalf of `actor`.

    A delivery still pending is made due now instead of being doubled; otherwise a new delivery row
    starts the retry schedule afresh. The caller checks who may ask, and commits.
    Raises RedeliveryRefused when the job is unknown, not finished, or asked for no webhook.
    """
    job = session.get(Job, job_id)
    if job is None:
        raise RedeliveryRefused(f"No job {job_id!r}.")
    if job.status not in FINISHED:
        raise RedeliveryRefused(f"Job {job_id} is {job.status}: its webhook is sent once it finishes.")
    if not job.params.get("webhook_url"):
        raise RedeliveryRefused(f"Job {job_id} was submitted without a webhook_url.")
    latest = session.scalars(
        select(WebhookDelivery).where(WebhookDelivery.job_id == job_id).order_by(WebhookDelivery.id.desc())
    ).first()
    session.add(JobEvent(job_id=job_id, event="webhook_redeliver", detail=f"asked by {actor}"[:200]))
    if latest is not None and latest.status == DeliveryStatus.pending:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == latest.id, WebhookDelivery.claim_token.is_(None))
            .values(next_attempt_at=utcnow())
        )
        session.refresh(latest)
        return latest
    payload = latest.payload if latest is not None else finished_payload(session, job)
    return _add_delivery(session, job, payload, requested_by=actor[:100])


@dataclass(frozen=True)
class DueDelivery:
    """What a dispatcher needs to make one attempt, read when it claimed the row."""

    id: int
    claim_token: str
    job_id: str
    url: str
    message_id: str
    payload: dict[str, Any]
    attempt: int
    secrets: list[str]


def claim_due(
    session: Session,
    *,
    lease_seconds: float,
    limit: int,
    secrets_for: Callable[[Session, User], list[str]] | None = None,
) -> list[DueDelivery]:
    """Claim up to `limit` due deliveries for one attempt each; the lease is how long they stay ours.

    `secrets_for(session, user)` gives the signing secrets of a job's owner (shared.webhooks.delivery).
    """
    now = utcnow()
    candidates = session.scalars(
        select(WebhookDelivery.id)
        .where(WebhookDelivery.status == DeliveryStatus.pending, WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
    ).all()
    claimed = []
    for delivery_id in candidates:
        token = uuid.uuid4().hex
        row = session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.status == DeliveryStatus.pending,
                WebhookDelivery.next_attempt_at <= now,
            )
            .values(next_attempt_at=now + timedelta(seconds=lease_seconds), claim_token=token)
            .returning(
                WebhookDelivery.job_id,
                WebhookDelivery.url,
                WebhookDelivery.message_id,
                WebhookDelivery.payload,
                WebhookDelivery.attempts,
            )
        ).first()
        if row is None:
            continue  # another dispatcher took it
        job_id, url, msg_id, payload, attempts = row
        owner = session.scalar(select(User).join(Job, Job.user_id == User.id).where(Job.id == job_id))
        secrets = secrets_for(session, owner) if owner is not None and secrets_for else []
        claimed.append(DueDelivery(delivery_id, token, job_id, url, msg_id, payload, attempts + 1, secrets))
    return claimed


@dataclass(frozen=True)
class AttemptOutcome:
    """One POST as it went: the checked address, the answer (status, first 1 KB) or the error."""

    address: str | None
    status_code: int | None
    latency_ms: float
    error: str | None
    response_excerpt: str | None

    @property
    def delivered(self) -> bool:
        """A 2xx answer read to its end (or its first 64 KB) within the attempt's timeout."""
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


def next_delay(schedule: Sequence[float], attempt: int, rng: random.Random | None = None) -> float | None:
    """Seconds until the attempt after `attempt` (1-based), with ±20 % jitter; None once the schedule is
    used up (the delivery then fails for good)."""
    if attempt > len(schedule):
        return None
    return schedule[attempt - 1] * (rng or random).uniform(0.8, 1.2)


def settle(
    session: Session, due: DueDelivery, outcome: AttemptOutcome, schedule: Sequence[float]
) -> str | None:
    """Record the attempt and move the delivery on (delivered, retry later, or failed for good).

    Returns the delivery's new status, or None when our lease had expired and another dispatcher owns
    the row (the attempt is still recorded).
    """
    now = utcnow()
    session.add(
        WebhookAttempt(
            delivery_id=due.id,
            number=due.attempt,
            at=now - timedelta(milliseconds=outcome.latency_ms),
            address=outcome.address,
            status_code=outcome.status_code,
            latency_ms=outcome.latency_ms,
            error=outcome.error,
            response_excerpt=outcome.response_excerpt,
        )
    )
    values: dict[str, Any] = {
        "attempts": due.attempt,
        "last_status": outcome.status_code,
        "last_error": outcome.error,
        "claim_token": None,
    }
    delay = None if outcome.delivered else next_delay(schedule, due.attempt)
    if outcome.delivered:
        values.update(status=DeliveryStatus.delivered, delivered_at=now)
    elif delay is None:
        values.update(status=DeliveryStatus.failed)
    else:
        values.update(next_attempt_at=now + timedelta(seconds=delay))
    done = rows_changed(
        session,
        update(WebhookDelivery)
        .where(WebhookDelivery.id == due.id, WebhookDelivery.claim_token == due.claim_token)
        .values(**values),
    )
    detail = f"attempt {due.attempt}: " + (
        f"HTTP {outcome.status_code}" if outcome.status_code is not None else str(outcome.error)
    )
    event = "webhook_delivered" if outcome.delivered else "webhook_attempt_failed"
    session.add(JobEvent(job_id=due.job_id, event=event, detail=detail[:500]))
    if not done:
        return None
    return str(values.get("status", DeliveryStatus.pending))


def oldest_undelivered_age(session: Session) -> float:
    """Seconds since the oldest pending delivery was created (0 when none waits)."""
    oldest = session.scalar(
        select(WebhookDelivery.created_at)
        .where(WebhookDelivery.status == DeliveryStatus.pending)
        .order_by(WebhookDelivery.created_at)
        .limit(1)
    )
    if oldest is None:
        return 0.0
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    return max((datetime.now(UTC) - oldest).total_seconds(), 0.0)
