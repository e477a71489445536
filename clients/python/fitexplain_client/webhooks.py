"""Verifying the webhooks fitexplain sends (Standard Webhooks), for receivers written in Python."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fitexplain_client.errors import WebhookVerificationError


def verify_webhook(headers: Mapping[str, str], body: bytes | str, secret: str) -> dict[str, Any]:
    """The verified payload ({"type": "job.succeeded", "data": {...}, ...}) of a webhook request; raises
    WebhookVerificationError on a bad signature or a stale timestamp. `secret` is `client.webhook_secret()`.
    Needs the `webhooks` extra (standardwebhooks)."""
    try:
        from standardwebhooks.webhooks import Webhook
        from standardwebhooks.webhooks import WebhookVerificationError as LibraryError
    except ImportError as exc:
        raise ImportError("verify_webhook needs: pip install 'fitexplain-client[webhooks]'") from exc
    lowered = {key.lower(): value for key, value in headers.items()}
    raw = body if isinstance(body, str) else body.decode("utf-8")
    try:
        payload = Webhook(secret).verify(raw, lowered)
    except LibraryError as exc:
        raise WebhookVerificationError(str(exc)) from exc
    return payload if isinstance(payload, dict) else json.loads(raw)
