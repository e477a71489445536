"""Dashboard sign-in: the API token lives only in an HttpOnly, SameSite=Strict cookie.

The cookie holds the token itself, so revoking the token (`fitexplain revoke-tokens`) ends the session
at once and no session table is needed. Every form that changes something carries a CSRF token derived
from the session token (an HMAC, so a page on another site cannot compute it), and its Origin, when the
browser sends one, must be this site.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Form, HTTPException, Request, status
from fastapi.responses import Response

from shared.auth import user_for_token
from shared.db import session_scope
from shared.tables import User

COOKIE = "fitexplain_session"
COOKIE_PATH = "/dashboard"


class SignInRequired(Exception):
    """Raised by page dependencies without a valid session: answered by a redirect to the sign-in form."""


def set_session(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_session(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )


def csrf_token(session_token: str) -> str:
    return hmac.new(session_token.encode(), b"fitexplain-dashboard-csrf", hashlib.sha256).hexdigest()


def signed_in_user(request: Request) -> User | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    with session_scope() as session:
        return user_for_token(session, token)


def require_user(request: Request) -> User:
    user = signed_in_user(request)
    if user is None:
        raise SignInRequired
    return user


DashboardUser = Annotated[User, Depends(require_user)]


def require_admin(user: DashboardUser) -> User:
    if not user.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="This page is for administrators.")
    return user


DashboardAdmin = Annotated[User, Depends(require_admin)]


def check_same_origin(request: Request) -> None:
    """403 when the browser says the form was posted from another site (also guards the sign-in form
    against logging a victim into someone else's account)."""
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail=f"Cross-site request refused (Origin {origin})."
        )


SameOrigin = Depends(check_same_origin)


def check_csrf(request: Request, csrf: Annotated[str, Form()] = "") -> None:
    """403 unless the form's CSRF token matches the session and the request comes from this site."""
    check_same_origin(request)
    token = request.cookies.get(COOKIE, "")
    # Compared as bytes: compare_digest refuses str with characters beyond ASCII (a TypeError, not a 403).
    if not token or not hmac.compare_digest(csrf.encode(), csrf_token(token).encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="Missing or wrong CSRF token: reload the page.")


CsrfChecked = Depends(check_csrf)
