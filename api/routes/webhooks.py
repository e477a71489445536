"""A job's webhook deliveries (with every attempt), redelivery, and a signed test ping to any URL."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel
from sqlalchemy import select

from api import errors
from api.call_rate import CallRate
from api.deps import CurrentUser, SessionDep
from api.owned_jobs import BY_PREFIX, owned_job
from shared.db import session_scope
from shared.settings import get_settings
from shared.tables import User, WebhookAttempt, WebhookDelivery
from shared.webhooks.delivery import RedeliveryRefused, check_url, redeliver, send_ping, signing_secrets

router = APIRouter(tags=["webhooks"], responses=errors.documented({401: "Missing or invalid token."}))


class WebhookAttemptPublic(BaseModel):
    number: int
    at: datetime
    address: str | None
    status_code: int | None
    latency_ms: float | None
    error: str | None
    response: str | None  # the first 1 KB of the receiver's answer


class WebhookDeliveryPublic(BaseModel):
    id: int
    event_type: str
    message_id: str  # the `webhook-id` header, the same on every attempt
    url: str
    status: str  # pending | delivered | failed
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime
    requested_by: str | None  # who asked for a redelivery (None: the job's own finish)
    attempt_log: list[WebhookAttemptPublic]


class JobWebhooks(BaseModel):
    job_id: str
    deliveries: list[WebhookDeliveryPublic]


class PingResult(BaseModel):
    url: str
    message_id: str
    delivered: bool
    status_code: int | None
    latency_ms: float
    address: str | None
    error: str | None
    response: str | None


def delivery_public(delivery: WebhookDelivery, attempts: list[WebhookAttempt]) -> WebhookDeliveryPublic:
    return WebhookDeliveryPublic(
        id=delivery.id,
        event_type=delivery.event_type,
        message_id=delivery.message_id,
        url=delivery.url,
        status=delivery.status,
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at if delivery.status == "pending" else None,
        last_status=delivery.last_status,
        last_error=delivery.last_error,
        delivered_at=delivery.delivered_at,
        created_at=delivery.created_at,
        requested_by=delivery.requested_by,
        attempt_log=[
            WebhookAttemptPublic(
                number=a.number,
                at=a.at,
                address=a.address,
                status_code=a.status_code,
                latency_ms=a.latency_ms,
                error=a.error,
                response=a.response_excerpt,
            )
            for a in attempts
        ],
    )


@router.get("/jobs/{job_id}/webhooks", response_model=JobWebhooks, responses=BY_PREFIX)
def job_webhooks(job_id: str, session: SessionDep, user: CurrentUser) -> JobWebhooks:
    """The job's webhook deliveries, oldest first, each with its attempts."""
    job_id = owned_job(session, job_id, user).id  # the full id, when a prefix named it
    deliveries = session.scalars(
        select(WebhookDelivery).where(WebhookDelivery.job_id == job_id).order_by(WebhookDelivery.id)
    ).all()
    attempts = session.scalars(
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id.in_([d.id for d in deliveries]))
        .order_by(WebhookAttempt.at, WebhookAttempt.id)
    ).all()
    by_delivery: dict[int, list[WebhookAttempt]] = {}
    for attempt in attempts:
        by_delivery.setdefault(attempt.delivery_id, []).append(attempt)
    return JobWebhooks(
        job_id=job_id, deliveries=[delivery_public(d, by_delivery.get(d.id, [])) for d in deliveries]
    )


@router.post(
    "/jobs/{job_id}/webhooks/redeliver",
    response_model=WebhookDeliveryPublic,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        **BY_PREFIX,
        **errors.documented(
            {409: "The job has not finished, or asked for no webhook; or the prefix is ambiguous."}
        ),
    },
)
def redeliver_webhook(job_id: str, session: SessionDep, user: CurrentUser) -> WebhookDeliveryPublic:
    """Send the job's webhook again (same `webhook-id`); it goes out within a second or two."""
    job_id = owned_job(session, job_id, user).id  # the full id, when a prefix named it
    try:
        delivery = redeliver(session, job_id, actor=user.name)
    except RedeliveryRefused as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from exc
    session.commit()
    return delivery_public(delivery, [])


def _secrets_of(user_id: int) -> list[str]:
    with session_scope() as session:
        user = session.get(User, user_id)
        assert user is not None
        return signing_secrets(session, user)


TEST_PINGS = CallRate("webhook tests", "FITEXPLAIN_WEBHOOK_TESTS_PER_MINUTE")


@router.post(
    "/webhooks/test",
    response_model=PingResult,
    responses=errors.documented(
        {
            422: "The URL is malformed or not public (`bad_webhook_url`).",
            429: "Too many webhook tests this minute (`rate_limited`, `retry_after`).",
        }
    ),
)
async def test_webhook(
    user: CurrentUser,
    url: Annotated[str, Query(max_length=2000, description="where to send a signed `ping` event")],
) -> PingResult:
    """Send a signed `ping` event to `url` now, with the same checks as a delivery; answers with the
    receiver's status (or why nothing was sent). At most FITEXPLAIN_WEBHOOK_TESTS_PER_MINUTE a user."""
    TEST_PINGS.take(user.id, get_settings().webhook_tests_per_minute)
    await run_in_threadpool(check_url, url, allow_private=get_settings().webhook_allow_private)
    secrets = await run_in_threadpool(_secrets_of, user.id)
    message_id, outcome = await send_ping(secrets, url)
    return PingResult(
        url=url,
        message_id=message_id,
        delivered=outcome.delivered,
        status_code=outcome.status_code,
        latency_ms=outcome.latency_ms,
        address=outcome.address,
        error=outcome.error,
        response=outcome.response_excerpt,
    )
