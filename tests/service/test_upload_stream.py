"""An upload cut off mid-body (the client closes its connection) against the real API process stores
nothing and leaves no file behind; the API goes on serving."""

from __future__ import annotations

import hashlib
import socket
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from shared.tables import Job, Upload
from tests.stack import DATA, Client, Stack
from tests.waiting import wait_until

pytestmark = [pytest.mark.service]

IRIS = (DATA / "iris_dataset2.csv").read_bytes()


def counts(stack: Stack) -> tuple[int, int]:
    engine = create_engine(stack.database_url)
    try:
        with engine.connect() as connection:
            jobs = connection.scalar(select(func.count()).select_from(Job))
            uploads = connection.scalar(select(func.count()).select_from(Upload))
            return int(jobs or 0), int(uploads or 0)
    finally:
        engine.dispose()


def temporary_files(stack: Stack) -> list[Path]:
    tmp = stack.tmp / "home" / "tmp"
    return sorted(path for path in tmp.rglob("*") if path.is_file()) if tmp.exists() else []


def test_an_upload_cut_off_mid_body_stores_nothing(stack: Stack, alice: Client) -> None:
    boundary = uuid.uuid4().hex
    rows = b"".join(b"%d,%d,%d,%d,%d\n" % (i, i + 1, i + 2, i + 3, i % 2) for i in range(200_000))
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="data.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    body += b"a,b,c,d,target\n" + rows + f"\r\n--{boundary}--\r\n".encode()
    head = (
        "POST /gbdtclassification HTTP/1.1\r\nHost: x\r\n"
        f"{'Authorization'}: {alice.http.headers['Authorization']}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    before = counts(stack)
    with socket.create_connection(("127.0.0.1", stack.port), timeout=30) as connection:
        connection.sendall(head + body[: len(body) // 2])  # half the body (over 1 MB: spooled to disk)
        wait_until(lambda: temporary_files(stack), 10, "the half body to be written to the workspace")
    wait_until(lambda: not temporary_files(stack), 10, "the cut-off upload's files to be removed")
    assert counts(stack) == before
    assert httpx.get(f"{stack.url}/healthz", timeout=5).status_code == 200
    whole = alice.submit("gbdtclassification", IRIS)  # the API goes on serving uploads
    assert whole.status_code == 202, whole.text
    assert temporary_files(stack) == []


def large_csv(bad_line: int | None = None) -> bytes:
    """About 5 MB: over a megabyte, so the API starts converting it while the rest streams in."""
    rows = [b"%d.25,%d.5,%d.75,%d,%d" % (i, i + 1, i + 2, i % 7, i % 2) for i in range(250_000)]
    if bad_line is not None:
        rows[bad_line - 2] = b"1.5,2.5,abc,3,1"  # the header is line 1
    return b"a,b,c,d,target\n" + b"\n".join(rows) + b"\n"


def test_a_large_csv_converted_as_it_streams_in_is_stored_and_named_by_its_hash(
    stack: Stack, alice: Client
) -> None:
    content = large_csv()
    response = alice.submit("gbdtclassification", content, n_estimators=5)
    assert response.status_code == 202, response.text
    engine = create_engine(stack.database_url)
    try:
        with engine.connect() as connection:
            digest = connection.scalar(select(Job.dataset_sha256).where(Job.id == response.json()["id"]))
            rows = connection.scalar(select(Upload.n_rows).where(Upload.sha256 == digest))
    finally:
        engine.dispose()
    assert (digest, rows) == (hashlib.sha256(content).hexdigest(), 250_000)
    assert temporary_files(stack) == []


def test_a_bad_line_late_in_a_streamed_csv_is_a_422_naming_it(stack: Stack, alice: Client) -> None:
    content = large_csv(bad_line=200_000)
    assert content.index(b"abc") > 1 << 20
    before = counts(stack)
    response = alice.submit("gbdtclassification", content)
    assert response.status_code == 422, response.text
    body = response.json()
    assert (body["code"], body["column"]) == ("non_numeric", "c") and "line 200000" in body["detail"]
    assert counts(stack) == before and temporary_files(stack) == []


def test_a_bad_parameter_with_a_large_csv_is_a_422_and_leaves_no_file(stack: Stack, alice: Client) -> None:
    """The conversion started while the CSV streamed in is stopped before the workspace goes."""
    before = counts(stack)
    response = alice.submit("gbdtclassification", large_csv(), n_estimators="many")
    assert response.status_code == 422, response.text
    assert "n_estimators" in response.text
    assert counts(stack) == before and temporary_files(stack) == []
