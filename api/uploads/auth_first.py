"""Routes that authenticate before they read the request body.

FastAPI reads (and parses) a form body before it resolves any dependency, the token check included: an
upload with a bad or missing token was read in full, up to FITEXPLAIN_MAX_UPLOAD_BYTES, before its 401.
This route class checks the token first, exactly as the `CurrentUser` dependency does (same answers), so
a refused upload costs a header, not its body; subclasses add checks that need only the headers and the
user (`before_body`).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from api.deps import authenticate, bearer_scheme
from shared.db import read_scope
from shared.tables import User


class AuthenticateBeforeBodyRoute(APIRoute):
    def before_body(self, session: Session, user: User, declared_bytes: int | None) -> None:
        """Checks of an authenticated request made before its body (of `declared_bytes`, its
        Content-Length, if any) is read (none here); run in the token lookup's session and thread (one
        round of each per request)."""

    async def answer(
        self, request: Request, handler: Callable[[Request], Coroutine[Any, Any, Response]]
    ) -> Response:
        """Read the body and answer (FastAPI's own handler); subclasses may read the body first."""
        return await handler(request)

    def _authenticate(
        self, credentials: HTTPAuthorizationCredentials | None, declared_bytes: int | None
    ) -> User:
        with read_scope() as session:  # reads only (the binding limits come later, under a lock)
            user = authenticate(session, credentials)  # raises the 401
            self.before_body(session, user, declared_bytes)
        return user

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def authenticated_handler(request: Request) -> Response:
            credentials = await bearer_scheme(request)
            # kept for the route's CurrentUser dependency (one lookup per request)
            declared = request.headers.get("content-length")
            declared_bytes = int(declared) if declared is not None and declared.isdigit() else None
            request.state.user = await run_in_threadpool(self._authenticate, credentials, declared_bytes)
            return await self.answer(request, handler)

        return authenticated_handler
