"""API tokens (shared/auth.py): shown once, stored hashed, revocable, expiring."""

from __future__ import annotations

from sqlalchemy import select

from shared.auth import TOKEN_PREFIX, create_token, hash_token, revoke_tokens, user_for_token
from shared.db import session_scope
from shared.tables import ApiToken, User
from tests.inprocess.factories import ago


def lookup(token: str) -> str | None:
    with session_scope() as session:
        user = user_for_token(session, token)
        return None if user is None else user.name


def new_token(name: str, **options: object) -> str:
    with session_scope() as session:
        return create_token(session, name, **options)  # type: ignore[arg-type]


def test_a_token_names_its_user_and_only_its_hash_is_stored() -> None:
    token = new_token("alice")
    assert token.startswith(TOKEN_PREFIX) and len(token) > 40
    assert lookup(token) == "alice"
    with session_scope() as session:
        stored = session.scalars(select(ApiToken.token_hash)).all()
    assert stored == [hash_token(token)]
    assert token not in stored


def test_unknown_tokens_are_refused() -> None:
    token = new_token("alice")
    assert lookup(token + "x") is None
    assert lookup("") is None


def test_a_second_token_reuses_the_user_and_admin_is_only_ever_granted() -> None:
    first = new_token("alice")
    second = new_token("alice", admin=True)
    third = new_token("alice")
    assert first != second != third
    with session_scope() as session:
        users = session.scalars(select(User)).all()
    assert [(user.name, user.is_admin) for user in users] == [("alice", True)]
    assert lookup(first) == lookup(third) == "alice"


def test_revoking_ends_every_live_token_of_that_user_only() -> None:
    alice_tokens = [new_token("alice"), new_token("alice")]
    bob = new_token("bob")
    with session_scope() as session:
        assert revoke_tokens(session, "alice") == 2
    with session_scope() as session:
        assert revoke_tokens(session, "alice") == 0  # already revoked
        assert revoke_tokens(session, "nobody") == 0
    assert [lookup(token) for token in alice_tokens] == [None, None]
    assert lookup(bob) == "bob"


def test_a_token_expires_after_its_time_to_live() -> None:
    token = new_token("alice", ttl_days=1)
    assert lookup(token) == "alice"
    with session_scope() as session:
        row = session.scalar(select(ApiToken))
        assert row is not None
        row.expires_at = ago(1)
    assert lookup(token) is None
