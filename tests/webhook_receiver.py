"""A webhook receiver on loopback for tests: records every POST, answers a chosen status."""

from __future__ import annotations

import queue
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.stack import free_port


class _Server(ThreadingHTTPServer):
    # socketserver's default backlog is 5: a burst of deliveries (two dispatchers, several at once each)
    # on a loaded machine overflowed it, the dropped SYN was retried after 1 s, and an attempt under the
    # fault tests' 2 s webhook timeout failed before the receiver saw it.
    request_queue_size = 128


class Receiver:
    """Listens on 127.0.0.1:`port` once started; can be stopped and started again on the same port."""

    def __init__(self, port: int | None = None, status: int = 204, location: str | None = None) -> None:
        self.port = port or free_port()
        self.status = status
        self.location = location  # sent as Location (with a 3xx status, a redirect)
        self.received: queue.Queue[tuple[bytes, dict[str, str]]] = queue.Queue()
        self._server: ThreadingHTTPServer | None = None

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def start(self) -> Receiver:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                owner.received.put((body, {k.lower(): v for k, v in self.headers.items()}))
                self.send_response(owner.status)
                if owner.location:
                    self.send_header("Location", owner.location)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self._server = _Server(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def all_received(self) -> list[tuple[bytes, dict[str, str]]]:
        items = []
        while not self.received.empty():
            items.append(self.received.get_nowait())
        return items
