"""API tokens: random, shown once, stored as sha256 hashes, revocable, optionally expiring."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, joinedload

from shared.tables import ApiToken, User, utcnow

TOKEN_PREFIX = "fx_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, name: str, *, admin: bool = False, ttl_days: int | None = None) -> str:
    """Create the user if needed and return a new token for it (only its hash is stored)."""
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        user = User(name=name, is_admin=admin)
        session.add(user)
        session.flush()
    elif admin and not user.is_admin:
        user.is_admin = True
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires = utcnow() + timedelta(days=ttl_days) if ttl_days is not None else None
    session.add(ApiToken(user_id=user.id, token_hash=hash_token(token), expires_at=expires))
    return token


def revoke_tokens(session: Session, name: str) -> int:
    """Revoke every live token of a user; returns how many."""
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        return 0
    return session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    ).rowcount


def user_for_token(session: Session, token: str) -> User | None:
    """The token's user, or None if unknown, revoked or expired."""
    digest = hash_token(token)
    # the user comes in the same query: every request authenticates, so a second round trip counts
    row = session.scalar(
        select(ApiToken).where(ApiToken.token_hash == digest).options(joinedload(ApiToken.user))
    )
    if row is None or not hmac.compare_digest(row.token_hash, digest) or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= utcnow():
        return None
    return row.user
