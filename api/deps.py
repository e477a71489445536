"""Request dependencies as named types, so a route's signature reads as a sentence."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from shared.auth import user_for_token
from shared.db import get_sessionmaker, read_scope
from shared.settings import Settings, get_settings
from shared.tables import User

bearer_scheme = HTTPBearer(auto_error=False, description="an API token from `fitexplain create-token NAME`")


def get_session() -> Iterator[Session]:
    session = get_sessionmaker()()
    try:
        yield session
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=message, headers={"WWW-Authenticate": "Bearer"})


def get_current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> User:
    """The token's user, looked up in a session of its own that is closed at once: a request must not
    hold a pooled connection while it waits for another (concurrent submits would drain the pool).
    Looked up once per request: a route that authenticates before the body keeps it in `request.state`."""
    checked: User | None = getattr(request.state, "user", None)
    if checked is not None:
        return checked
    with read_scope() as session:
        return authenticate(session, credentials)


def authenticate(session: Session, credentials: HTTPAuthorizationCredentials | None) -> User:
    """The credentials' user, or the 401 that says what is wrong with them."""
    if credentials is None:
        raise _unauthorized("Missing token: send 'Authorization: Bearer <token>'.")
    user = user_for_token(session, credentials.credentials)
    if user is None:
        raise _unauthorized("Invalid, revoked or expired token.")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def get_admin_user(user: CurrentUser) -> User:
    if not user.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="This route is for administrators.")
    return user


AdminUser = Annotated[User, Depends(get_admin_user)]
