"""`Server-Timing: app;dur=<ms>` on the dashboard's and the admin routes' responses: the time from the
request's arrival to the response's first byte, as the browser's developer tools and benchmarks/dashboard.py
read it."""

from __future__ import annotations

import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TIMED_PREFIXES = ("/dashboard", "/admin")


class ServerTimingMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(TIMED_PREFIXES):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed_ms = (time.perf_counter() - started) * 1000
                MutableHeaders(scope=message).append("Server-Timing", f"app;dur={elapsed_ms:.1f}")
            await send(message)

        await self.app(scope, receive, timed_send)
