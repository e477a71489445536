"""How jobs and a user's storage look on the wire (JobPublic, StorageUsagePublic) and how stored results
are sent back."""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import IO, Any

from fastapi import Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from api.content_coding import accepts_gzip
from shared.ml.model.predict.spec import is_predict
from shared.results import formats as results
from shared.results import predict_table
from shared.store.uploads import StorageUsage
from shared.tables import Job, JobStatus

GUNZIP_CHUNK = 1 << 20  # bytes of gzip read, and at most bytes of JSON sent, per streamed piece
# Converting a 190k-row SHAP result to a binary form holds its JSON as Python objects (1.4 GB at peak) for
# 4-5 CPU-seconds: at most this many at once per API process, the others wait their turn.
CONVERSIONS = threading.BoundedSemaphore(2)


class StorageUsagePublic(BaseModel):
    """Bytes your jobs keep, against your quota; submits that would exceed it get 413."""

    used_bytes: int
    quota_bytes: int
    available_bytes: int
    uploads_bytes: int
    results_bytes: int
    uploads: int
    results: int
    models_bytes: int
    models: int


def usage_public(used: StorageUsage, quota: int) -> StorageUsagePublic:
    return StorageUsagePublic(
        used_bytes=used.used_bytes,
        quota_bytes=quota,
        available_bytes=max(0, quota - used.used_bytes),
        uploads_bytes=used.uploads_bytes,
        results_bytes=used.results_bytes,
        uploads=used.uploads,
        results=used.results,
        models_bytes=used.models_bytes,
        models=used.models,
    )


class JobError(BaseModel):
    code: str
    message: str


class Score(BaseModel):
    name: str = Field(description='"accuracy" (classification) or "rmse" (regression), on the test rows')
    value: float


class JobPublic(BaseModel):
    id: str
    endpoint: str
    status: str
    params: dict[str, Any]
    progress: float
    progress_message: str
    attempts: int
    estimated_seconds: float | None = Field(
        None, description="estimated worker-seconds of the job (null for jobs submitted before estimates)"
    )
    queue: str = Field("small", description='"small" or "large": the queue its estimated cost routed it to')
    error: JobError | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    data_filename: str | None = Field(None, description="the uploaded file's name as sent, if it had one")
    model: str | None = Field(
        None, description="the model fitted: `base_model` (ml endpoints) or `model_type` (gbdt endpoints)"
    )
    score: Score | None = Field(
        None, description="a succeeded job's headline metric (its result has them all); null otherwise"
    )
    duration_seconds: float | None = Field(
        None, description="finished_at - started_at: null until it finishes, or if it never started"
    )
    links: dict[str, str]


# Pages start at most this far in: far past any real list, and well inside the database's 64-bit OFFSET
# (a larger number used to reach the driver and fail with a 500).
MAX_OFFSET = 1_000_000_000


class JobPage(BaseModel):
    items: list[JobPublic]
    total: int
    limit: int
    offset: int


def job_public(job: Job) -> JobPublic:
    error = JobError(code=job.error_code, message=job.error_message or "") if job.error_code else None
    return JobPublic(
        id=job.id,
        endpoint=job.endpoint,
        status=job.status,
        params=job.params,
        progress=job.progress,
        progress_message=job.progress_message,
        attempts=job.attempts,
        estimated_seconds=job.estimated_seconds,
        queue=job.queue,
        error=error,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        data_filename=job.data_filename,
        model=model_name(job.spec),
        score=_score(job),
        duration_seconds=_duration_seconds(job),
        links=_links(job),
    )


def _links(job: Job) -> dict[str, str]:
    """The job's own links; a predict job's also name the job whose model it used and that model."""
    links = {"self": f"/jobs/{job.id}", "result": f"/jobs/{job.id}/result"}
    if is_predict(job.spec):
        source = job.spec.get("source_job")
        links.update(source_job=f"/jobs/{source}", model=f"/jobs/{source}/model")
    return links


def _score(job: Job) -> Score | None:
    if job.status != JobStatus.succeeded or job.score_name is None or job.score_value is None:
        return None
    return Score(name=job.score_name, value=job.score_value)


def _duration_seconds(job: Job) -> float | None:
    if job.finished_at is None or job.started_at is None:
        return None
    return (job.finished_at - job.started_at).total_seconds()


def model_name(spec: dict[str, Any]) -> str | None:
    """The fitted model's name from a job's stored spec (`JobSpec.to_json`): the ml family's base model,
    the gbdt family's model type."""
    if is_predict(spec):
        named = spec.get("model_name")
        return named if isinstance(named, str) else None
    model = spec.get("model")
    if not isinstance(model, dict):
        return None
    name = model.get("base_model") if model.get("family") == "ml" else model.get("model_type")
    return name if isinstance(name, str) else None


def result_response(
    request: Request,
    body_gzip: bytes | IO[bytes],
    status_code: int = 200,
    vary: str = "Accept-Encoding",
) -> Response:
    """Send the stored gzip body as is to clients that accept gzip, decompressed to the others. The body
    may be an open stream of the stored blob (closed once sent): then neither form is ever held whole in
    memory, whatever the result's size."""
    headers = {"Vary": vary}
    json_type = "application/json"
    pieces = _read_pieces(body_gzip) if not isinstance(body_gzip, bytes) else None
    if not accepts_gzip(request.headers.get("accept-encoding")):
        content = gunzipped(pieces if pieces is not None else body_gzip)
        return StreamingResponse(content, status_code=status_code, media_type=json_type, headers=headers)
    headers["Content-Encoding"] = "gzip"
    if pieces is None:
        return Response(body_gzip, status_code=status_code, media_type=json_type, headers=headers)
    assert not isinstance(body_gzip, bytes)
    headers.update(_length_header(body_gzip))  # the stored size, as a whole body would have it
    return StreamingResponse(pieces, status_code=status_code, media_type=json_type, headers=headers)


def _length_header(stream: IO[bytes]) -> dict[str, str]:
    """Content-Length of a seekable stream (rewound), else nothing (the response is then chunked)."""
    if not stream.seekable():
        return {}
    length = stream.seek(0, 2)
    stream.seek(0)
    return {"Content-Length": str(length)}


def _read_pieces(stream: IO[bytes], chunk: int = GUNZIP_CHUNK) -> Iterator[bytes]:
    """The stream's bytes in pieces of at most `chunk`, closing it at the end (or when abandoned)."""
    with stream:
        while piece := stream.read(chunk):
            yield piece


def gunzipped(body_gzip: bytes | Iterable[bytes], chunk: int = GUNZIP_CHUNK) -> Iterator[bytes]:
    """The decompressed bytes of a gzip body (every member, as gzip.decompress), in pieces of at most
    `chunk` bytes however well the data compressed. The body may come as bytes or as pieces of them (a
    stream read from storage)."""
    pieces: Iterable[bytes | memoryview]
    if isinstance(body_gzip, bytes | bytearray | memoryview):
        view = memoryview(body_gzip)
        pieces = (view[start : start + chunk] for start in range(0, len(view), chunk))
    else:
        pieces = body_gzip
    decompressor, fresh = zlib.decompressobj(wbits=31), True
    for data in pieces:
        while data:
            fresh = False
            piece = decompressor.decompress(data, chunk)
            if piece:
                yield piece
            if decompressor.eof:  # the member is over: what follows is the next one
                data = decompressor.unused_data
                decompressor, fresh = zlib.decompressobj(wbits=31), True
            else:
                data = decompressor.unconsumed_tail
    while not fresh and not decompressor.eof:  # output still held back when the last piece filled up
        piece = decompressor.decompress(b"", chunk)
        if not piece:
            raise EOFError("the stored result ends before its gzip stream does")
        yield piece


def binary_result_response(
    body_gzip: bytes,
    fmt: results.ResultFormat,
    job_id: str,
    add: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Response:
    """The result converted from its stored JSON (about 5 CPU-seconds for a 190k-row SHAP result), as a
    download; `add` adds to the result what its binary forms hold beside it (the test rows' features)."""
    with CONVERSIONS:
        result = results.load_stored(body_gzip)
        data = results.encode(add(result) if add else result, fmt.name)
    return Response(data, media_type=fmt.media_types[0], headers=_download_headers(fmt, job_id))


def stored_binary_response(stream: IO[bytes], fmt: results.ResultFormat, job_id: str) -> Response:
    """A binary form the worker stored with the result, streamed as is (closed once sent); the same
    headers as a converted one, plus its length."""
    headers = {**_download_headers(fmt, job_id), **_length_header(stream)}
    return StreamingResponse(_read_pieces(stream), media_type=fmt.media_types[0], headers=headers)


def table_json_response(stream: IO[bytes], status_code: int = 200) -> Response:
    """The JSON of a result kept only as Parquet (a predict job's), written from it a slice of rows at a
    time as it is sent (not compressed: writing gzip would cost more than sending)."""
    pieces = predict_table.parquet_json_pieces(stream)
    headers = {"Vary": "Accept, Accept-Encoding"}
    return StreamingResponse(pieces, status_code=status_code, media_type="application/json", headers=headers)


def table_arrow_response(stream: IO[bytes], fmt: results.ResultFormat, job_id: str) -> Response:
    """A stored Parquet form as Arrow IPC (stream or file), converted a slice of rows at a time as it is
    sent."""
    pieces = predict_table.arrow_pieces(stream, file_format=fmt.name == "arrow-file")
    return StreamingResponse(pieces, media_type=fmt.media_types[0], headers=_download_headers(fmt, job_id))


def table_binary_response(stream: IO[bytes], fmt: results.ResultFormat, job_id: str) -> Response:
    """A result kept only as Parquet in a form that cannot be written a slice at a time (NPZ): converted
    whole, as a result's JSON is (`binary_result_response`)."""
    import pyarrow.parquet as pq

    with CONVERSIONS, stream:
        data = results.encode(results.from_table(pq.read_table(stream)), fmt.name)
    return Response(data, media_type=fmt.media_types[0], headers=_download_headers(fmt, job_id))


def _download_headers(fmt: results.ResultFormat, job_id: str) -> dict[str, str]:
    return {
        "Vary": "Accept, Accept-Encoding",
        "Content-Disposition": f'attachment; filename="{job_id}.{fmt.extension}"',
    }
