"""The caller's own account: the secret that signs their webhooks, and the storage their jobs use."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import CurrentUser, SessionDep, SettingsDep
from shared.storage import StorageUsage, usage
from shared.tables import User
from shared.webhooks import user_secret

router = APIRouter(tags=["account"], responses={401: {"description": "Missing or invalid token."}})


class WebhookSecret(BaseModel):
    secret: str
    scheme: str = "Standard Webhooks: verify webhook-id, webhook-timestamp and webhook-signature"


class StorageUsagePublic(BaseModel):
    """Bytes your jobs keep, against your quota; submits that would exceed it get 413."""

    used_bytes: int
    quota_bytes: int
    available_bytes: int
    uploads_bytes: int
    results_bytes: int
    uploads: int
    results: int


def usage_public(used: StorageUsage, quota: int) -> StorageUsagePublic:
    return StorageUsagePublic(
        used_bytes=used.used_bytes,
        quota_bytes=quota,
        available_bytes=max(0, quota - used.used_bytes),
        uploads_bytes=used.uploads_bytes,
        results_bytes=used.results_bytes,
        uploads=used.uploads,
        results=used.results,
    )


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
