"""The caller's own account: the secret that signs their webhooks, and the storage their jobs use."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from api import errors
from api.deps import CurrentUser, SessionDep, SettingsDep
from api.serialize import StorageUsagePublic, usage_public
from shared.store.uploads import usage
from shared.tables import User
from shared.webhooks.delivery import rotate_secret, user_secret

router = APIRouter(tags=["account"], responses=errors.documented({401: "Missing or invalid token."}))


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


@router.get("/account/usage", response_model=StorageUsagePublic)
def account_usage(session: SessionDep, user: CurrentUser, settings: SettingsDep) -> StorageUsagePublic:
    """Bytes kept for your jobs (distinct uploads and stored results) and your quota. Deleting jobs
    (`DELETE /jobs/{id}`) frees their uploads and results; an upload other users also sent counts for
    each of them."""
    return usage_public(usage(session, user.id), settings.max_storage_bytes_per_user)


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
