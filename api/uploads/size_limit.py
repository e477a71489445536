"""Refuse oversized uploads while they stream in, before multipart parsing spools them to disk."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import under_prefix


class _TooLarge(BaseException):  # BaseException: FastAPI turns an Exception in body parsing into 400
    pass


class UploadLimitMiddleware:
    """413 when Content-Length, or the bytes actually received, exceed `max_bytes`."""

    def __init__(self, app: ASGIApp, max_bytes: int, techtonique_prefix: str) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.techtonique_prefix = techtonique_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(scope, send)
            return
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not response_started:
                await self._reject(scope, send)

    def _body(self, scope: Scope) -> dict[str, object]:
        """The error body (api.errors' shape), `{"detail"}` alone on the /techtonique mount."""
        detail = f"Upload too large: the limit is {self.max_bytes} bytes (FITEXPLAIN_MAX_UPLOAD_BYTES)."
        if under_prefix(scope["path"], self.techtonique_prefix):
            return {"detail": detail}
        return {"code": "upload_too_large", "detail": detail, "limit": self.max_bytes}

    async def _reject(self, scope: Scope, send: Send) -> None:
        body = json.dumps(self._body(scope)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": body})
