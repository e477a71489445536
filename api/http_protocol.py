"""uvicorn's h11 protocol, answering 431 when a request's head is too large.

h11 already bounds the request line plus headers (`max_incomplete_event_size`, set from
FITEXPLAIN_MAX_HEADER_BYTES) and says 431 in its error (`error_status_hint`), but uvicorn answers every
protocol error with 400. (uvicorn's default httptools parser has no bound at all: a 32 MB header was
accepted.) This keeps uvicorn's protocol and only sends the status h11 suggests.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE, H11Protocol


class _HintedConnection(h11.Connection):
    """An h11 connection that remembers the status suggested by its last protocol error."""

    error_status = 400

    def next_event(self) -> Any:
        try:
            return super().next_event()
        except h11.RemoteProtocolError as exc:
            self.error_status = exc.error_status_hint
            raise


class BoundedHeadersProtocol(H11Protocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_head_bytes = self.config.h11_max_incomplete_event_size or DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
        self.conn = _HintedConnection(h11.SERVER, self.max_head_bytes)

    def send_400_response(self, msg: str) -> None:
        status = self.conn.error_status
        if status != 431:
            super().send_400_response(msg)
            return
        body = (
            f"Request headers too large: the limit is {self.max_head_bytes} bytes "
            "(FITEXPLAIN_MAX_HEADER_BYTES)."
        ).encode()
        # Content-Length, not h11's default chunked framing: a client still sending its head reads a
        # plainly framed answer (one reading only Content-Length saw an empty body when the head and the
        # chunks arrived in separate packets).
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=status, headers=headers, reason=HTTPStatus(status).phrase),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event))
        self.transport.close()
