"""Oversized uploads are refused (413) whether the client declares their size, hides it (chunked) or
lies about it; too many rows or columns, and every file of the malformed corpus, answer 422 with the
reason — never a 5xx.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.stack import DATA, Client, Stack

pytestmark = [pytest.mark.service]

MAX_UPLOAD = 4096
TIGHT_LIMITS = {
    "FITEXPLAIN_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
    "FITEXPLAIN_MAX_ROWS": "5",
    "FITEXPLAIN_MAX_COLUMNS": "3",
    "FITEXPLAIN_MAX_CELL_CHARS": "10",
}
MALFORMED = DATA / "malformed"
EXPECTED = json.loads((MALFORMED / "expected.json").read_text())
LIMIT_ENV = {
    "max_rows": "FITEXPLAIN_MAX_ROWS",
    "max_columns": "FITEXPLAIN_MAX_COLUMNS",
    "max_cell_chars": "FITEXPLAIN_MAX_CELL_CHARS",
    "max_classes": "FITEXPLAIN_MAX_CLASSES",
}


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An API (no worker needed: nothing here should ever reach one) with tiny input limits."""
    stack = Stack(tmp_path_factory.mktemp("tight"), extra_env=TIGHT_LIMITS).setup()
    stack.start_api()
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def user(tight: Stack) -> Client:
    return Client(tight.url, tight.token("uma"))


def multipart(content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="data.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def csv_of(n_rows: int, n_features: int) -> bytes:
    header = ",".join([f"x{j}" for j in range(n_features)] + ["target"])
    rows = [",".join([str(i % 7)] * n_features + [str(i % 2)]) for i in range(n_rows)]
    return "\n".join([header, *rows]).encode()


def assert_too_large(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text
    body = response.json()
    assert (body["code"], body["limit"]) == ("upload_too_large", MAX_UPLOAD)
    assert str(MAX_UPLOAD) in body["detail"]


def test_declared_size_over_the_limit_is_refused(user: Client) -> None:
    assert_too_large(user.submit("gbdtclassification", b"x" * (MAX_UPLOAD + 1)))


def test_the_techtonique_mount_refuses_it_with_fastapis_body(user: Client) -> None:
    response = user.submit("techtonique/gbdtclassification", b"x" * (MAX_UPLOAD + 1))
    assert response.status_code == 413 and set(response.json()) == {"detail"}
    assert str(MAX_UPLOAD) in response.json()["detail"]


def test_undeclared_size_is_counted(user: Client) -> None:
    """A chunked body has no Content-Length: the bytes are counted as they arrive."""
    body, content_type = multipart(b"0,1\n" * MAX_UPLOAD)

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    response = user.http.post("/gbdtclassification", content=pieces(), headers={"Content-Type": content_type})
    assert "content-length" not in response.request.headers
    assert_too_large(response)


def raw_request(stack: Stack, head: str, body: bytes) -> int:
    """Send bytes exactly as given (no client fixes the framing); returns the status code answered."""
    with socket.create_connection(("127.0.0.1", stack.port), timeout=30) as connection:
        connection.sendall(head.encode() + body)
        answer = b""
        while b"\r\n" not in answer:
            piece = connection.recv(4096)
            if not piece:
                break
            answer += piece
    return int(answer.split(b" ", 2)[1])


def chunked(body: bytes, size: int = 1000) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def test_lying_content_length_is_not_believed(tight: Stack, user: Client) -> None:
    """Content-Length says 100 bytes, the chunked body carries far more: never accepted, never a 5xx."""
    token = user.http.headers["Authorization"]
    body, content_type = multipart(b"0,1\n" * MAX_UPLOAD)
    head = (
        "POST /gbdtclassification HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: {token}\r\nContent-Type: {content_type}\r\n"
        "Content-Length: 100\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    assert raw_request(tight, head, chunked(body)) in (400, 413)


def test_small_upload_reaches_validation(user: Client) -> None:
    """Under the size limit the CSV is read (and, with max_rows 5, found too short to fit)."""
    response = user.submit("gbdtclassification", csv_of(4, 2))
    assert response.status_code == 422 and response.json()["code"] == "too_few_rows", response.text


def test_too_many_rows_names_the_limit(user: Client) -> None:
    response = user.submit("gbdtclassification", csv_of(6, 2))
    assert response.status_code == 422
    assert response.json()["code"] == "too_many_rows" and "max_rows" in response.json()["detail"]


def test_too_many_columns_names_the_limit(user: Client) -> None:
    response = user.submit("gbdtclassification", csv_of(4, 3))
    assert response.status_code == 422
    assert response.json()["code"] == "too_many_columns" and "max_columns" in response.json()["detail"]


@pytest.fixture(scope="module")
def apis(stack: Stack, tight: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Stack]]:
    """Where to send each corpus file: the default stack, or an API whose limits match the case's."""
    classes = Stack(
        tmp_path_factory.mktemp("classes"),
        extra_env={"FITEXPLAIN_MAX_CLASSES": "5"},
        name=stack.name,
        database_url=stack.database_url,
    )
    classes.start_api()  # a second API on the default stack's database
    yield {
        "": stack,
        "max_classes": classes,
        "max_rows": tight,
        "max_columns": tight,
        "max_cell_chars": tight,
    }
    assert classes.api is not None
    classes.api.terminate()
    classes.api.wait(timeout=15)


# not UTF-8 text for shared.ml.ingest.dataset, a gzip CSV upload for the API
READ_BY_THE_API = {"gzipped.csv.gz"}


def test_a_gzipped_csv_is_read(alice: Client) -> None:
    response = alice.submit("mlclassification", (MALFORMED / "gzipped.csv.gz").read_bytes())
    assert response.status_code == 202, response.text


@pytest.mark.parametrize("name", sorted(set(EXPECTED) - READ_BY_THE_API))
def test_malformed_file_is_refused_with_its_reason(
    name: str, apis: dict[str, Stack], tight: Stack, alice: Client
) -> None:
    case = EXPECTED[name]
    limits = case.get("limits", {})
    assert len(limits) <= 1
    target = apis[next(iter(limits), "")]
    for limit, value in limits.items():
        assert TIGHT_LIMITS.get(LIMIT_ENV[limit], "5") == str(value)  # the API's limit is the case's
    token = alice.http.headers["Authorization"] if target.name != tight.name else None
    client = Client(target.url, token.removeprefix("Bearer ") if token else tight.token("uma"))
    endpoint = "mlregression" if case.get("task") == "regression" else "mlclassification"
    response = client.submit(endpoint, (MALFORMED / name).read_bytes())
    assert response.status_code == 422, response.text
    assert response.json()["code"] == case["code"]
    assert case["message"] in response.json()["detail"]


def test_corpus_is_complete() -> None:
    assert {path.name for path in Path(MALFORMED).iterdir()} - {"expected.json"} == set(EXPECTED)
