"""API tokens: random, shown once, stored as sha256 hashes, revocable, optionally expiring."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import Select, bindparam, select, update
from sqlalchemy.orm import Session

from shared.db import rows_changed
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
    return rows_changed(
        session,
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow()),
    )


def user_for_token(session: Session, token: str) -> User | None:
    """The token's user, or None if unknown, revoked or expired."""
    digest = hash_token(token)
    found = session.execute(_token_lookup(), {"digest": digest}).first()
    if found is None:
        return None
    user, token_hash, revoked_at, expires_at = found
    if not hmac.compare_digest(token_hash, digest) or revoked_at is not None:
        return None
    if expires_at is not None and expires_at <= utcnow():
        return None
    return user


@cache
def _token_lookup() -> Select[User, str, datetime | None, datetime | None]:
    """The user and the token's state in one query, built once: every request authenticates, so a second
    round trip, an eager-loaded relationship or a statement built per call all count."""
    return (
        select(User, ApiToken.token_hash, ApiToken.revoked_at, ApiToken.expires_at)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == bindparam("digest"))
    )
