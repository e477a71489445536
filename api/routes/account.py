"""The caller's own account: the secret that signs their webhooks."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import CurrentUser, SessionDep
from shared.tables import User
from shared.webhooks import user_secret

router = APIRouter(tags=["account"], responses={401: {"description": "Missing or invalid token."}})


class WebhookSecret(BaseModel):
    secret: str
    scheme: str = "Standard Webhooks: verify webhook-id, webhook-timestamp and webhook-signature"


@router.get("/webhook-secret", response_model=WebhookSecret)
def webhook_secret(session: SessionDep, user: CurrentUser) -> WebhookSecret:
    """The key that signs your webhooks (created on first use); verify with any Standard Webhooks library."""
    secret = user_secret(session, session.get(User, user.id) or user)
    session.commit()
    return WebhookSecret(secret=secret)
