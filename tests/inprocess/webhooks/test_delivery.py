"""One delivery attempt in process, against loopback servers: https keeps the original host as the TLS
server name while connecting to the checked address (and still verifies the certificate), a receiver
that trickles its answer is cut off by the attempt's total timeout, and a huge answer is read only to
64 KB."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.webhooks import address as webhook_address
from shared.webhooks.pinned_post import post_pinned
from tests.stack import free_port

HOST = "pinned.loopback.test"


@pytest.fixture
def loopback_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    """The DNS seam answers 127.0.0.1 for every host (the system resolver knows no *.test host)."""
    monkeypatch.setattr(webhook_address, "get_resolver", lambda: lambda host, port: ["127.0.0.1"])


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    request = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    names = ["-subj", f"/CN={HOST}", "-addext", f"subjectAltName=DNS:{HOST}"]
    subprocess.run(
        [*request, *names, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, list[str | None]]]:
    """A TLS listener on loopback that records the server name each client asked for."""
    cert, key = self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    names: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: names.append(name)  # type: ignore[func-returns-value]
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            try:
                with context.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass  # the client refused our self-signed certificate

    threading.Thread(target=serve, daemon=True).start()
    yield port, names
    listener.close()


def test_https_sends_the_original_host_as_server_name_and_verifies(
    loopback_resolver: None, tls_server: tuple[int, list[str | None]]
) -> None:
    port, names = tls_server
    outcome = asyncio.run(
        post_pinned(f"https://{HOST}:{port}/hook", b"{}", {}, allow_private=True, timeout=10)
    )
    assert names == [HOST]  # SNI: the URL's host, though the connection went to 127.0.0.1
    assert outcome.address == "127.0.0.1" and outcome.status_code is None
    assert outcome.error is not None and "CERTIFICATE_VERIFY_FAILED" in outcome.error


@pytest.fixture
def trickling_server() -> Iterator[int]:
    """Answers 200 with a body of one byte every 0.2 s, forever."""
    listener = socket.create_server(("127.0.0.1", free_port()))
    stop = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
        while not stop.wait(0.2):
            try:
                conn.sendall(b"x")
            except OSError:
                return

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1]
    stop.set()
    listener.close()


def test_an_answer_that_never_ends_is_cut_off_by_the_total_timeout(
    loopback_resolver: None, trickling_server: int
) -> None:
    url = f"http://{HOST}:{trickling_server}/hook"
    outcome = asyncio.run(post_pinned(url, b"{}", {}, allow_private=True, timeout=1.0))
    assert outcome.error == "timed out after 1.0 s"
    assert outcome.status_code == 200 and outcome.response_excerpt is None and not outcome.delivered


@pytest.fixture
def flooding_server() -> Iterator[tuple[int, list[int]]]:
    """Answers 200 with a 50 MB body; records how many bytes it managed to send."""
    listener = socket.create_server(("127.0.0.1", 0))
    sent: list[int] = []

    def serve() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        size = 50_000_000
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
        chunk, total = b"y" * 65536, 0
        try:
            while total < size:
                total += conn.send(chunk)
        except OSError:
            pass  # the client hung up
        sent.append(total)
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1], sent
    listener.close()


def test_at_most_64_kb_of_the_answer_is_read(
    loopback_resolver: None, flooding_server: tuple[int, list[int]]
) -> None:
    port, sent = flooding_server
    url = f"http://{HOST}:{port}/hook"
    outcome = asyncio.run(post_pinned(url, b"{}", {}, allow_private=True, timeout=10))
    assert outcome.delivered and outcome.response_excerpt == "y" * 1024
    deadline = time.monotonic() + 10
    while not sent and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sent and sent[0] < 50_000_000  # the client stopped reading and closed the connection
