"""`Server-Timing: app;dur=<ms>, cpu;dur=<ms>` on the dashboard's and the admin routes' responses: the
wall time from the request's arrival to the response's first byte, and the API process's CPU time over
the same span (the same as the request's own CPU time when requests come one at a time, and unlike wall
time not inflated by other processes on a busy machine), as browsers' developer tools and
benchmarks/dashboard.py read them."""

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
        cpu_started = time.process_time()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed_ms = (time.perf_counter() - started) * 1000
                cpu_ms = (time.process_time() - cpu_started) * 1000
                MutableHeaders(scope=message).append(
                    "Server-Timing", f"app;dur={elapsed_ms:.1f}, cpu;dur={cpu_ms:.1f}"
                )
            await send(message)

        await self.app(scope, receive, timed_send)
