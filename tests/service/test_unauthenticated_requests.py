"""Requests that cost the server before they are authenticated: a 60 MB upload with a bad or missing
token is refused with 401 before its body is read, and a 32 MB request header gets 431. A user over
their running-jobs limit gets their 429 before the body is read too.

Both are shown on a raw socket, as an attacker would send them: the 401 arrives while 59 of the 60 MB
are still unsent (the server never waited for them), the 431 long before the 32 MB were sent.
"""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Iterator

import pytest

from tests.stack import Client, Stack

pytestmark = [pytest.mark.service]

BODY_BYTES = 60_000_000
SENT_BEFORE_ANSWER = 1_000_000
HEADER_BYTES = 32_000_000
CHUNK = 65_536
PART_HEAD = (
    b"--fxboundary\r\n"
    b'Content-Disposition: form-data; name="file"; filename="big.csv"\r\n'
    b"Content-Type: text/csv\r\n\r\n"
    b"x0,x1,target\n"
)


@pytest.fixture(scope="module")
def api_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(
        tmp_path_factory.mktemp("unauthenticated"), extra_env={"FITEXPLAIN_MAX_RUNNING_JOBS_PER_USER": "1"}
    ).setup()
    stack.start_api()
    yield stack
    stack.stop()


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """The status code and body of one HTTP/1.1 response (Content-Length framed)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65_536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    length = int({k.lower(): v for k, v in headers.items()}.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65_536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), body


def send_large_upload(stack: Stack, authorization: str | None) -> tuple[int, bytes]:
    """Send the head of a 60 MB upload and its first megabyte; the answer then comes before the rest."""
    head = [
        "POST /gbdtclassification HTTP/1.1",
        f"Host: 127.0.0.1:{stack.port}",
        "Content-Type: multipart/form-data; boundary=fxboundary",
        f"Content-Length: {BODY_BYTES}",
    ]
    if authorization:
        head.append(f"Authorization: {authorization}")
    with socket.create_connection(("127.0.0.1", stack.port), timeout=60) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        sock.sendall(PART_HEAD + b"1,2,3\n" * (SENT_BEFORE_ANSWER // 6))
        return read_response(sock)


def test_a_user_over_the_running_jobs_limit_is_refused_before_the_body_is_read(api_only: Stack) -> None:
    token = api_only.token("busy")
    first = Client(api_only.url, token).submit("gbdtclassification", "iris_dataset2.csv")
    assert first.status_code == 202, first.text  # queued for good: this stack has no worker
    status, body = send_large_upload(api_only, f"Bearer {token}")
    assert status == 429, body
    refusal = json.loads(body)
    assert refusal["code"] == "rate_limited" and "FITEXPLAIN_MAX_RUNNING_JOBS_PER_USER" in refusal["detail"]


@pytest.mark.parametrize("authorization", ["Bearer fx_not_a_token", None], ids=["bad token", "no token"])
def test_upload_without_a_valid_token_is_refused_before_its_body_is_read(
    api_only: Stack, authorization: str | None
) -> None:
    head = [
        "POST /gbdtclassification HTTP/1.1",
        f"Host: 127.0.0.1:{api_only.port}",
        "Content-Type: multipart/form-data; boundary=fxboundary",
        f"Content-Length: {BODY_BYTES}",
    ]
    if authorization:
        head.append(f"Authorization: {authorization}")
    with socket.create_connection(("127.0.0.1", api_only.port), timeout=60) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        sock.sendall(PART_HEAD + b"1,2,3\n" * (SENT_BEFORE_ANSWER // 6))  # a valid start of an upload
        # 59 MB are still unsent: an answer now means the server did not wait for the body.
        status, body = read_response(sock)
    assert status == 401, body
    refusal = json.loads(body)
    assert refusal["code"] == "unauthorized" and "token" in refusal["detail"].lower()


def test_oversized_request_header_gets_431(api_only: Stack) -> None:
    with socket.create_connection(("127.0.0.1", api_only.port), timeout=60) as sock:
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{api_only.port}\r\nX-Big: ".encode())
        sent = 0
        while sent < HEADER_BYTES:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:  # the server answered: stop sending
                break
            try:
                sock.sendall(b"a" * CHUNK)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += CHUNK
        status, body = read_response(sock)
    assert status == 431, body
    assert sent < HEADER_BYTES  # answered long before the 32 MB were sent
    error = json.loads(body)
    assert error["code"] == "headers_too_large" and "FITEXPLAIN_MAX_HEADER_BYTES" in error["detail"]


def read_statuses(sock: socket.socket, count: int) -> list[int]:
    """The status codes of the next `count` responses on a connection (small, Content-Length framed)."""
    data = b""
    statuses: list[int] = []
    while len(statuses) < count:
        while b"\r\n\r\n" in data and len(statuses) < count:
            head, rest = data.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            fields = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:])}
            length = int(fields.get("content-length", "0"))
            if len(rest) < length:
                break
            statuses.append(int(lines[0].split()[1]))
            data = rest[length:]
        if len(statuses) < count:
            chunk = sock.recv(65_536)
            assert chunk, f"connection closed after {statuses}"
            data += chunk
    return statuses


def test_the_header_bound_is_per_request_on_a_kept_alive_connection(api_only: Stack) -> None:
    """Each request's head counts alone: three heads of 40 KB (under the 64 KB bound, 120 KB in all) on
    one connection, two of them sent in one write, each get their answer; a fourth of 100 KB gets 431."""

    def head(padding: int) -> bytes:
        return f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: {'b' * padding}\r\n\r\n".encode()

    with socket.create_connection(("127.0.0.1", api_only.port), timeout=60) as sock:
        sock.sendall(head(40_000))
        assert read_statuses(sock, 1) == [200]
        sock.sendall(head(40_000) + head(40_000))  # pipelined
        assert read_statuses(sock, 2) == [200, 200]
        sock.sendall(head(100_000))
        assert read_statuses(sock, 1) == [431]
