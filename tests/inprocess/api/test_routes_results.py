"""GET /jobs/{id}/result in every form: ?format= over Accept (q-values), 406/422, JSON by default."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from api.serialize import gunzipped
from shared.db import session_scope
from shared.results import formats as results
from shared.store.jobstore import claim, result_body, succeed
from tests.inprocess.factories import TINY_GBDT, Account, make_job
from tests.results.samples import synthetic_result
from tests.stack import DATA

RESULT = synthetic_result(n_rows=40)
MEDIA = {
    "arrow": "application/vnd.apache.arrow.stream",
    "arrow-file": "application/vnd.apache.arrow.file",
    "parquet": "application/vnd.apache.parquet",
    "npz": "application/x-npz",
}
EXTENSIONS = {"arrow": "arrows", "arrow-file": "arrow", "parquet": "parquet", "npz": "npz"}


def succeeded(user_id: int) -> str:
    job_id = make_job(user_id)
    with session_scope() as session:
        assert claim(session, job_id, worker="w1", stale_after=60, max_attempts=3).job is not None
    with session_scope() as session:
        assert succeed(session, job_id, "w1", RESULT)
    return job_id


def stored(job_id: str) -> bytes:
    with session_scope() as session:
        body = result_body(session, job_id)
    assert body is not None
    return body


@pytest.fixture
def job_id(alice: Account) -> str:
    return succeeded(alice.id)


@pytest.mark.parametrize("fmt", list(MEDIA))
def test_format_gives_the_binary_download_holding_the_json(
    client: TestClient, alice: Account, job_id: str, fmt: str
) -> None:
    response = client.get(f"/jobs/{job_id}/result", params={"format": fmt}, headers=alice.headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == MEDIA[fmt]
    assert response.headers["content-disposition"] == f'attachment; filename="{job_id}.{EXTENSIONS[fmt]}"'
    assert "Accept" in response.headers["vary"]
    assert results.to_result(response.content, fmt) == RESULT


@pytest.mark.parametrize(
    ("accept", "fmt"),
    [
        ("application/vnd.apache.parquet", "parquet"),
        ("application/x-parquet", "parquet"),
        ("application/vnd.apache.arrow.stream", "arrow"),
        ("application/vnd.apache.arrow.file", "arrow-file"),
        ("application/x-npz", "npz"),
        ("application/json;q=0.5, application/vnd.apache.parquet", "parquet"),  # q wins over order
        ("application/vnd.apache.parquet;q=0.4, application/x-npz;q=0.9", "npz"),
        ("application/x-npz, application/vnd.apache.parquet", "npz"),  # equal q: the client's order
        ("application/vnd.apache.parquet, */*;q=0.1", "parquet"),
        ("text/html,application/xhtml+xml,*/*;q=0.8", "json"),  # a browser
        ("application/*", "json"),
        ("*/*", "json"),
        ("application/json;q=0, application/x-npz;q=0.1", "npz"),
    ],
)
def test_accept_chooses_the_form_by_q_value(
    client: TestClient, alice: Account, job_id: str, accept: str, fmt: str
) -> None:
    response = client.get(f"/jobs/{job_id}/result", headers={**alice.headers, "Accept": accept})
    assert response.status_code == 200, response.text
    if fmt == "json":
        assert response.headers["content-type"] == "application/json" and response.json() == RESULT
    else:
        assert response.headers["content-type"] == MEDIA[fmt]
        assert results.to_result(response.content, fmt) == RESULT


def test_the_format_parameter_wins_over_accept(client: TestClient, alice: Account, job_id: str) -> None:
    headers = {**alice.headers, "Accept": "application/vnd.apache.parquet"}
    as_json = client.get(f"/jobs/{job_id}/result", params={"format": "json"}, headers=headers)
    assert as_json.headers["content-type"] == "application/json" and as_json.json() == RESULT
    headers["Accept"] = "image/png"  # no 406 either: the parameter decides
    as_npz = client.get(f"/jobs/{job_id}/result", params={"format": "npz"}, headers=headers)
    assert as_npz.headers["content-type"] == MEDIA["npz"]


def test_an_unacceptable_accept_is_a_406_naming_the_media_types(
    client: TestClient, alice: Account, job_id: str
) -> None:
    for accept in ("image/png", "application/json;q=0", "text/*"):
        response = client.get(f"/jobs/{job_id}/result", headers={**alice.headers, "Accept": accept})
        assert response.status_code == 406, accept
        detail = response.json()["detail"]
        assert all(media in detail for media in [*MEDIA.values(), "application/json", "?format="])


def test_an_unknown_format_is_a_422_naming_the_parameter_and_the_formats(
    client: TestClient, alice: Account, job_id: str
) -> None:
    response = client.get(f"/jobs/{job_id}/result", params={"format": "csv"}, headers=alice.headers)
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["loc"] == ["query", "format"]
    assert all(f"'{name}'" in error["msg"] for name in ("json", "arrow", "arrow-file", "parquet", "npz"))


def test_gzip_clients_get_the_stored_bytes_as_before(client: TestClient, alice: Account, job_id: str) -> None:
    response = client.get(f"/jobs/{job_id}/result", headers={**alice.headers, "Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == str(len(stored(job_id)))
    assert response.json() == RESULT  # httpx decodes the gzip; the raw bytes are the stored ones
    with client.stream(
        "GET", f"/jobs/{job_id}/result", headers={**alice.headers, "Accept-Encoding": "gzip"}
    ) as raw:
        assert b"".join(raw.iter_raw()) == stored(job_id)


def test_plain_json_is_streamed_and_byte_identical(client: TestClient, alice: Account, job_id: str) -> None:
    response = client.get(f"/jobs/{job_id}/result", headers={**alice.headers, "Accept-Encoding": "identity"})
    assert response.status_code == 200 and "content-encoding" not in response.headers
    assert "content-length" not in response.headers  # sent in pieces as it is decompressed
    assert response.content == gzip.decompress(stored(job_id))


@pytest.mark.parametrize(
    ("accept_encoding", "compressed"),
    [
        ("gzip", True),
        ("x-gzip", True),
        ("deflate, gzip;q=0.5", True),
        ("gzip;q=0", False),
        ("GZIP;Q=0.0", False),
        ("*", True),
        ("*;q=0", False),
        ("*, gzip;q=0", False),
        ("gzip;q=zero", False),
        ("br", False),
    ],
)
def test_gzip_is_sent_only_where_its_q_value_allows(
    client: TestClient, alice: Account, job_id: str, accept_encoding: str, compressed: bool
) -> None:
    headers = {**alice.headers, "Accept-Encoding": accept_encoding}
    response = client.get(f"/jobs/{job_id}/result", headers=headers)
    assert (response.headers.get("content-encoding") == "gzip") is compressed
    assert response.json() == RESULT


def test_an_unfinished_job_is_still_a_409_whatever_the_format(client: TestClient, alice: Account) -> None:
    queued = make_job(alice.id)
    response = client.get(f"/jobs/{queued}/result", params={"format": "parquet"}, headers=alice.headers)
    assert response.status_code == 409 and "is queued" in response.json()["detail"]


def test_gunzip_streams_in_bounded_pieces_across_gzip_members() -> None:
    text = b'{"values": [' + b"0.0, " * 200_000 + b"1.0]}"  # compresses 500-fold
    body = gzip.compress(text[:300_000], 1) + gzip.compress(text[300_000:], 9)
    pieces = list(gunzipped(body, chunk=4096))
    assert b"".join(pieces) == text and max(map(len, pieces)) <= 4096
    streamed = (body[start : start + 777] for start in range(0, len(body), 777))  # as storage may send it
    assert b"".join(gunzipped(streamed, chunk=4096)) == text
    assert b"".join(gunzipped(gzip.compress(b""))) == b"" and list(gunzipped(b"")) == []
    with pytest.raises((EOFError, zlib.error)):
        list(gunzipped(body[:-20]))


def test_the_openapi_lists_every_media_type_of_the_result(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/jobs/{job_id}/result"]["get"]
    content = operation["responses"]["200"]["content"]
    assert set(content) >= {"application/json", "application/x-parquet", *MEDIA.values()}
    [parameter] = [p for p in operation["parameters"] if p["name"] == "format"]
    assert "406" in operation["responses"] and "parquet" in str(parameter["schema"])


def test_a_stored_parquet_form_is_sent_as_stored_and_equals_the_conversion(
    client: TestClient, alice: Account
) -> None:
    """The worker stores a large result's Parquet form with it: the download streams those bytes, the
    very ones the API would have converted from the JSON."""
    parquet = results.parquet_to_store(RESULT, min_rows=40)
    assert parquet is not None and results.parquet_to_store(RESULT, min_rows=41) is None
    job_id = make_job(alice.id)
    with session_scope() as session:
        assert claim(session, job_id, worker="w1", stale_after=60, max_attempts=3).job is not None
    with session_scope() as session:
        assert succeed(session, job_id, "w1", RESULT, parquet)
    assert parquet == results.encode(results.load_stored(stored(job_id)), "parquet")
    response = client.get(f"/jobs/{job_id}/result", params={"format": "parquet"}, headers=alice.headers)
    assert response.status_code == 200 and response.content == parquet
    assert response.headers["content-type"] == MEDIA["parquet"]
    assert response.headers["content-length"] == str(len(parquet))
    assert response.headers["content-disposition"] == f'attachment; filename="{job_id}.parquet"'
    assert "Accept" in response.headers["vary"]
    assert results.to_result(response.content, "parquet") == RESULT
    as_json = client.get(f"/jobs/{job_id}/result", headers={**alice.headers, "Accept-Encoding": "identity"})
    assert as_json.content == gzip.decompress(stored(job_id))  # JSON unchanged, still the default


@pytest.mark.parametrize("fmt", ["json", *MEDIA])
def test_the_test_rows_feature_values_are_served_as_uploaded(
    client: TestClient, alice: Account, run_job: Callable[[str], str], fmt: str
) -> None:
    """`include=X_test` adds them to the JSON, the binary forms always hold them: the uploaded rows at
    `test_rows`, categories as their text; the plain JSON stays without them."""
    csv = (DATA / "tables" / "houses.csv").read_bytes()
    params = {**TINY_GBDT, "target": "price", "id_column": "house_id"}
    job_id = make_job(alice.id, endpoint="gbdtregression", params=params, csv=csv)
    assert run_job(job_id) == "succeeded"
    plain = client.get(f"/jobs/{job_id}/result", headers=alice.headers).json()
    assert "X_test" not in plain and len(plain["test_rows"]) == len(plain["y_true"])
    query = {"include": "X_test"} if fmt == "json" else {"format": fmt}
    response = client.get(f"/jobs/{job_id}/result", params=query, headers=alice.headers)
    assert response.status_code == 200, response.text
    result = response.json() if fmt == "json" else results.to_result(response.content, fmt)
    uploaded = pd.read_csv(DATA / "tables" / "houses.csv").iloc[plain["test_rows"]]
    features = ["rooms", "area_m2", "neighbourhood", "built"]
    assert list(result["X_test"]) == features
    for name in features:
        expected = [None if value != value else value for value in uploaded[name].tolist()]
        assert result["X_test"][name] == expected
    assert {key: value for key, value in result.items() if key != "X_test"} == plain
