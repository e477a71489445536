"""Signed webhooks (Standard Webhooks) that tell a user's server when one of their jobs has finished.

Each user has their own signing secret (GET /webhook-secret), so one user cannot forge another's calls;
after a rotation the previous secret keeps signing beside the new one for a day (the spec's multiple
signatures), so receivers can switch without losing a message. Deliveries come from the outbox
(shared.webhooks.outbox), sent by `deliver_due`, which the API runs in a loop: it needs only the database.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from shared.db import session_scope
from shared.settings import get_settings
from shared.tables import User, utcnow
from shared.webhooks.address import check_url
from shared.webhooks.outbox import (
    AttemptOutcome,
    DueDelivery,
    RedeliveryRefused,
    claim_due,
    redeliver,
    settle,
)
from shared.webhooks.pinned_post import post_pinned

__all__ = [
    "RedeliveryRefused",
    "check_url",
    "deliver_due",
    "redeliver",
    "rotate_secret",
    "send_ping",
    "signing_secrets",
    "user_secret",
]

log = logging.getLogger("fitexplain.webhooks")

CONCURRENT_DELIVERIES = 16
CLAIM_BATCH = 100


def _new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def user_secret(session: Session, user: User) -> str:
    """The user's current signing secret, created on first use."""
    if not user.webhook_secret:
        user.webhook_secret = _new_secret()
        session.flush()
    return user.webhook_secret


def rotate_secret(session: Session, user: User, overlap_seconds: float) -> tuple[str, datetime]:
    """A new current secret; the old one keeps signing until the returned time."""
    previous = user_secret(session, user)
    until = utcnow() + timedelta(seconds=overlap_seconds)
    user.webhook_secret = _new_secret()
    user.webhook_secret_previous = previous
    user.webhook_secret_previous_until = until
    session.flush()
    return user.webhook_secret, until


def signing_secrets(session: Session, user: User) -> list[str]:
    """The secrets that sign a message now: the current one, and the previous one during the overlap."""
    current = user_secret(session, user)
    until = user.webhook_secret_previous_until
    if until is not None and until.tzinfo is None:  # SQLite hands back naive UTC
        until = until.replace(tzinfo=UTC)
    if user.webhook_secret_previous and until is not None and until > utcnow():
        return [current, user.webhook_secret_previous]
    return [current]


def signed_request(
    signing_keys: list[str], message_id: str, body: dict[str, Any]
) -> tuple[bytes, dict[str, str]]:
    """The body and the Standard Webhooks headers; one `v1,` signature per secret, space-separated."""
    text = json.dumps(body, separators=(",", ":"))
    now = datetime.now(UTC)
    signatures = " ".join(Webhook(secret).sign(message_id, now, text) for secret in signing_keys)
    headers = {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signatures,
    }
    return text.encode(), headers


async def _attempt(due: DueDelivery) -> None:
    settings = get_settings()
    content, headers = signed_request(due.secrets, due.message_id, due.payload)
    outcome = await post_pinned(
        due.url,
        content,
        headers,
        allow_private=settings.webhook_allow_private,
        timeout=settings.webhook_timeout,
    )

    def record() -> str | None:
        with session_scope() as session:
            return settle(session, due, outcome, settings.webhook_retry_delays)

    status = await asyncio.to_thread(record)
    if status is None:
        log.warning("delivery %s: lease expired during attempt %s", due.id, due.attempt)


async def deliver_due() -> int:
    """One pass of the dispatcher: claim the due deliveries and make one attempt of each, a few at a
    time. Returns how many were attempted."""
    settings = get_settings()

    def claim() -> list[DueDelivery]:
        with session_scope() as session:
            return claim_due(
                session,
                lease_seconds=settings.webhook_lease_seconds,
                limit=CLAIM_BATCH,
                secrets_for=signing_secrets,
            )

    due = await asyncio.to_thread(claim)
    gate = asyncio.Semaphore(CONCURRENT_DELIVERIES)

    async def attempt(delivery: DueDelivery) -> None:
        async with gate:
            try:
                await _attempt(delivery)
            except Exception:  # the database went away mid-pass: the lease runs out, it is retried
                log.exception("webhook delivery %s failed", delivery.id)

    await asyncio.gather(*(attempt(d) for d in due))
    return len(due)


async def send_ping(signing_keys: list[str], url: str) -> tuple[str, AttemptOutcome]:
    """A signed `ping` event to `url`, sent now with the delivery's checks; returns (message id, outcome)."""
    settings = get_settings()
    message_id = f"ping-{uuid.uuid4().hex}"
    body = {"type": "ping", "timestamp": utcnow().isoformat(), "data": {"message": "fitexplain webhook test"}}
    content, headers = signed_request(signing_keys, message_id, body)
    outcome = await post_pinned(
        url, content, headers, allow_private=settings.webhook_allow_private, timeout=settings.webhook_timeout
    )
    return message_id, outcome
