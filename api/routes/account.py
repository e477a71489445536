"""The caller's own account: the secret that signs their webhooks."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import CurrentUser, SessionDep, SettingsDep
from shared.tables import User
from shared.webhooks import rotate_secret, user_secret

router = APIRouter(tags=["account"], responses={401: {"description": "Missing or invalid token."}})


class WebhookSecret(BaseModel):
    secret: str
    scheme: str = "Standard Webhooks: verify webhook-id, webhook-timestamp and webhook-signature"


class RotatedWebhookSecret(WebhookSecret):
    previous_secret_valid_until: datetime  # until then, messages carry a signature by each secret


@router.get("/webhook-secret", response_model=WebhookSecret)
def webhook_secret(session: SessionDep, user: CurrentUser) -> WebhookSecret:
    """The key that signs your webhooks (created on first use); verify with any Standard Webhooks library."""
    secret = user_secret(session, session.get(User, user.id) or user)
    session.commit()
    return WebhookSecret(secret=secret)


@router.post("/webhook-secret/rotate", response_model=RotatedWebhookSecret)
def rotate_webhook_secret(
    session: SessionDep, user: CurrentUser, settings: SettingsDep
) -> RotatedWebhookSecret:
    """A new signing secret. For a day (FITEXPLAIN_WEBHOOK_SECRET_OVERLAP_SECONDS) every webhook is signed
    with both the old and the new secret (two signatures in `webhook-signature`), so either verifies."""
    secret, until = rotate_secret(
        session, session.get(User, user.id) or user, settings.webhook_secret_overlap_seconds
    )
    session.commit()
    return RotatedWebhookSecret(secret=secret, previous_secret_valid_until=until)
