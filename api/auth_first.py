"""Routes that authenticate before they read the request body.

FastAPI reads (and parses) a form body before it resolves any dependency, the token check included: an
upload with a bad or missing token was read in full, up to FITEXPLAIN_MAX_UPLOAD_BYTES, before its 401.
This route class checks the token first, exactly as the `CurrentUser` dependency does (same answers), so
a refused upload costs a header, not its body.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from api.deps import bearer_scheme, get_current_user


class AuthenticateBeforeBodyRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def authenticated_handler(request: Request) -> Response:
            credentials = await bearer_scheme(request)
            # raises the 401; kept for the route's CurrentUser dependency (one lookup per request)
            request.state.user = await run_in_threadpool(get_current_user, request, credentials)
            return await handler(request)

        return authenticated_handler
