"""Fanned-out explanation work, tracked in the database (not in Celery chords, which are fragile on Redis).

A job's explanation is cut into spans (rows for SHAP, features for permutation importance); each span is
a `job_chunks` row that any worker may claim, compute and store. Completion is counted here, and a chunk
whose worker stopped beating can be claimed again. The parts and the prepared model are blobs
(shared/blobs/store.py) that live only while their job runs.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from isal import igzip
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from shared.blobs import gc as blob_gc
from shared.blobs.store import current_store, new_token
from shared.ml.explain.methods import explanation_method
from shared.ml.explain.methods.base import ExplanationPart
from shared.ml.model import codec
from shared.tables import Job, JobChunk, JobPrepared, JobStatus, heartbeat_stale, utcnow


@dataclass(frozen=True)
class ClaimedChunk:
    job_id: str
    method: str
    index: int
    start: int
    stop: int


def create_chunks(session: Session, job_id: str, method: str, spans: list[tuple[int, int]]) -> None:
    """Insert the job's chunks for a method, unless a previous attempt already did (its done chunks count)."""
    existing = session.scalar(
        select(func.count()).select_from(JobChunk).where(JobChunk.job_id == job_id, JobChunk.method == method)
    )
    if existing:
        return
    session.add_all(
        JobChunk(job_id=job_id, method=method, index=i, start=start, stop=stop)
        for i, (start, stop) in enumerate(spans)
    )


def claim_next(session: Session, job_id: str, *, stale_after: float, worker: str = "") -> ClaimedChunk | None:
    """Take the first chunk that is pending, or running under a worker that stopped beating; the chunk
    records `worker` (its `host:pid`) as the one computing it."""
    claimable = or_(
        JobChunk.status == "pending",
        and_(JobChunk.status == "running", heartbeat_stale(JobChunk.heartbeat_at, stale_after)),
    )
    candidates = session.execute(
        select(JobChunk.method, JobChunk.index)
        .where(JobChunk.job_id == job_id, claimable)
        .order_by(JobChunk.method, JobChunk.index)
        .limit(8)
    ).all()
    for method, index in candidates:
        row = session.execute(
            update(JobChunk)
            .where(JobChunk.job_id == job_id, JobChunk.method == method, JobChunk.index == index, claimable)
            .values(
                status="running", heartbeat_at=utcnow(), attempts=JobChunk.attempts + 1, worker=worker or None
            )
            .returning(JobChunk.start, JobChunk.stop)
        ).first()
        if row is not None:
            return ClaimedChunk(job_id, method, index, row.start, row.stop)
    return None


def beat(session: Session, chunk: ClaimedChunk) -> None:
    session.execute(
        update(JobChunk)
        .where(
            JobChunk.job_id == chunk.job_id,
            JobChunk.method == chunk.method,
            JobChunk.index == chunk.index,
            JobChunk.status == "running",
        )
        .values(heartbeat_at=utcnow())
    )


def finish(session: Session, chunk: ClaimedChunk, part: ExplanationPart) -> None:
    """Store a computed part, unless its job finished meanwhile (the part would outlive the job's data)."""
    key = f"chunks/{chunk.job_id}/{chunk.method}-{chunk.index}-{new_token()}.part"
    blobs = current_store()
    blobs.put_bytes(key, encode_part(part))
    blob_gc.written(session, key)
    if not still_running(session, chunk.job_id):
        blobs.delete(key)
        return
    this_chunk = (
        JobChunk.job_id == chunk.job_id,
        JobChunk.method == chunk.method,
        JobChunk.index == chunk.index,
    )
    # A chunk reclaimed from a slow worker may be finished twice: the later part replaces the earlier.
    replaced = session.scalar(select(JobChunk.blob_key).where(*this_chunk).with_for_update())
    session.execute(
        update(JobChunk).where(*this_chunk).values(status="done", blob_key=key, heartbeat_at=utcnow())
    )
    blob_gc.delete_after_commit(session, [replaced])


def progress(session: Session, job_id: str, method: str) -> tuple[int, int, int, int]:
    """(chunks done, chunks in all, units done, units in all); units are rows or features."""
    rows = session.execute(
        select(JobChunk.status, JobChunk.start, JobChunk.stop).where(
            JobChunk.job_id == job_id, JobChunk.method == method
        )
    ).all()
    done = [r for r in rows if r.status == "done"]
    return (
        len(done),
        len(rows),
        sum(r.stop - r.start for r in done),
        sum(r.stop - r.start for r in rows),
    )


def load_parts(session: Session, job_id: str, method: str) -> list[ExplanationPart]:
    """The done chunks' typed parts, in order (the method's result type says how to read them)."""
    result_type = explanation_method(method).result_type
    keys = session.scalars(
        select(JobChunk.blob_key)
        .where(JobChunk.job_id == job_id, JobChunk.method == method, JobChunk.status == "done")
        .order_by(JobChunk.index)
    ).all()
    blobs = current_store()
    return [result_type.from_record(decode_part(blobs.get_bytes(key))) for key in keys if key is not None]


def store_prepared(session: Session, job_id: str, prepared: object) -> None:
    """Share the fitted job with helping workers (`shared.ml.model.codec`: its key holds its sha256)."""
    if session.get(JobPrepared, job_id) is None:
        body = codec.dump_object(prepared)
        key = f"prepared/{job_id}/{new_token()}-{codec.sha256_of(body)}.pickle"
        current_store().put_bytes(key, body)
        blob_gc.written(session, key)
        session.add(JobPrepared(job_id=job_id, blob_key=key))


def load_prepared(session: Session, job_id: str) -> Any | None:
    """The fitted job shared by `store_prepared`, its sha256 verified before it is unpickled
    (`codec.ModelIntegrityError` when the blob changed), or None when it is gone."""
    row = session.get(JobPrepared, job_id)
    if row is None:
        return None
    try:
        body = current_store().get_bytes(row.blob_key)
    except FileNotFoundError:  # dropped (the job finished) after this session read the row
        return None
    return codec.load_object(body, sha256_in_key(row.blob_key))


def sha256_in_key(key: str) -> str:
    """The sha256 a content-addressed key ends with (before its suffix)."""
    return key.rsplit("/", 1)[-1].split(".", 1)[0].rsplit("-", 1)[-1]


def still_running(session: Session, job_id: str) -> bool:
    """Lock the job row (shared) and say whether it still runs: working data written in this transaction
    then cannot outlive a cancel, whose status change waits for the lock and drops it after."""
    status = session.scalar(select(Job.status).where(Job.id == job_id).with_for_update(read=True))
    return status == JobStatus.running


def encode_part(part: ExplanationPart) -> bytes:
    """Arrays as .npy (never pickled), everything else as JSON, gzip-compressed together."""
    record = part.to_record()
    arrays = {k: v for k, v in record.items() if isinstance(v, np.ndarray)}
    plain = {k: _plain(v) for k, v in record.items() if k not in arrays}
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    header = json.dumps(plain).encode()
    return igzip.compress(len(header).to_bytes(8, "big") + header + buffer.getvalue(), 3)


def decode_part(body: bytes) -> dict[str, Any]:
    raw = igzip.decompress(body)
    size = int.from_bytes(raw[:8], "big")
    part: dict[str, Any] = json.loads(raw[8 : 8 + size])
    with np.load(io.BytesIO(raw[8 + size :]), allow_pickle=False) as arrays:
        part.update({key: arrays[key] for key in arrays.files})
    return part


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    return value
