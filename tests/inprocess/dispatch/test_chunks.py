"""Fan-out chunks (shared/dispatch/chunks.py): created once, claimed once unless their worker went quiet,
merged in order, and encoded without pickle."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import event, func, select, update

from shared.db import get_engine, session_scope
from shared.dispatch import chunks
from shared.ml.explain.methods.shap import ShapValues
from shared.store import working_data
from shared.tables import JobChunk, JobPrepared
from tests.inprocess.factories import ago, make_job, make_user, set_job
from tests.parts import shap_part

STALE = 300.0  # far from any time a slow machine takes between two statements
SPANS = [(0, 10), (10, 20), (20, 25)]


@pytest.fixture
def job_id() -> str:
    """A running job (chunks belong to a job its worker is explaining)."""
    job_id = make_job(make_user("alice")[0])
    set_job(job_id, status="running", worker="w1")
    return job_id


@pytest.fixture
def planned(job_id: str) -> str:
    with session_scope() as session:
        chunks.create_chunks(session, job_id, "shap", SPANS)
    return job_id


def claim_next(job_id: str) -> chunks.ClaimedChunk | None:
    with session_scope() as session:
        return chunks.claim_next(session, job_id, stale_after=STALE)


def set_chunk(job_id: str, index: int, **values: object) -> None:
    with session_scope() as session:
        session.execute(
            update(JobChunk).where(JobChunk.job_id == job_id, JobChunk.index == index).values(**values)
        )


def chunk_rows(job_id: str) -> list[tuple[int, str, int]]:
    with session_scope() as session:
        return [
            (row.index, row.status, row.attempts)
            for row in session.scalars(select(JobChunk).where(JobChunk.job_id == job_id).order_by("index"))
        ]


def test_chunks_are_created_once_per_job_and_method(planned: str) -> None:
    with session_scope() as session:
        chunks.create_chunks(session, planned, "shap", [(0, 25)])  # a retried attempt: keeps the plan
        chunks.create_chunks(session, planned, "permutation", [(0, 2), (2, 4)])
    with session_scope() as session:
        query = select(JobChunk.method, func.count()).where(JobChunk.job_id == planned)
        counts = dict(session.execute(query.group_by(JobChunk.method)).tuples().all())
    assert counts == {"shap": 3, "permutation": 2}


def test_claims_take_pending_chunks_in_order_and_each_once(planned: str) -> None:
    claimed = [claim_next(planned) for _ in range(4)]
    assert [(c.index, c.start, c.stop) for c in claimed if c] == [(0, 0, 10), (1, 10, 20), (2, 20, 25)]
    assert claimed[3] is None  # all running under live workers
    assert chunk_rows(planned) == [(0, "running", 1), (1, "running", 1), (2, "running", 1)]


def test_a_chunk_taken_between_looking_and_taking_is_left_to_its_taker(planned: str) -> None:
    """Two workers race: another worker claims chunk 0 after this one chose it but before its UPDATE runs
    (injected just before that statement). The UPDATE must find chunk 0 taken and move on to chunk 1."""
    rivals: list[chunks.ClaimedChunk | None] = []

    def rival_claims_first(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.startswith("UPDATE job_chunks") and not rivals:
            rivals.append(None)  # from here on, this hook stays out of the rival's own UPDATE
            rivals[0] = claim_next(planned)

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", rival_claims_first)
    try:
        mine = claim_next(planned)
    finally:
        event.remove(engine, "before_cursor_execute", rival_claims_first)
    assert rivals[0] is not None and rivals[0].index == 0
    assert mine is not None and mine.index == 1
    assert chunk_rows(planned) == [(0, "running", 1), (1, "running", 1), (2, "pending", 0)]


def test_a_chunk_whose_worker_went_quiet_is_claimed_again(planned: str) -> None:
    for _ in SPANS:
        claim_next(planned)
    set_chunk(planned, 1, heartbeat_at=ago(STALE + 5))
    again = claim_next(planned)
    assert again is not None and again.index == 1
    assert chunk_rows(planned)[1] == (1, "running", 2)
    assert claim_next(planned) is None


def test_a_done_chunk_is_never_claimed_even_when_old(planned: str) -> None:
    first = claim_next(planned)
    assert first is not None
    with session_scope() as session:
        chunks.finish(session, first, shap_part(0, 10))
    set_chunk(planned, 0, heartbeat_at=ago(STALE * 10))
    nexts = [claim_next(planned) for _ in range(3)]
    assert [c.index for c in nexts if c] == [1, 2]


def test_beat_keeps_a_running_chunk_fresh_and_ignores_a_done_one(planned: str) -> None:
    first, second = claim_next(planned), claim_next(planned)
    assert first is not None and second is not None
    long_ago = ago(STALE + 5)
    set_chunk(planned, 0, heartbeat_at=long_ago)
    set_chunk(planned, 1, status="done", heartbeat_at=long_ago)
    with session_scope() as session:
        chunks.beat(session, first)
        chunks.beat(session, second)
    with session_scope() as session:
        beats = dict(
            session.execute(select(JobChunk.index, JobChunk.heartbeat_at).where(JobChunk.job_id == planned))
            .tuples()
            .all()
        )
    assert beats[0] >= long_ago + timedelta(seconds=STALE)
    assert beats[1] == long_ago


def test_a_part_finished_after_its_job_was_cancelled_is_not_kept(planned: str) -> None:
    chunk = claim_next(planned)
    assert chunk is not None
    set_job(planned, status="cancelled")
    with session_scope() as session:
        chunks.finish(session, chunk, shap_part(0, 10))
    assert chunk_rows(planned)[0] == (0, "running", 1)
    with session_scope() as session:
        assert chunks.load_parts(session, planned, "shap") == []


def test_progress_counts_done_chunks_and_units(planned: str) -> None:
    with session_scope() as session:
        assert chunks.progress(session, planned, "shap") == (0, 3, 0, 25)
    second = [claim_next(planned) for _ in range(2)][1]
    assert second is not None
    with session_scope() as session:
        chunks.finish(session, second, shap_part(10, 20))
    with session_scope() as session:
        assert chunks.progress(session, planned, "shap") == (1, 3, 10, 25)
        assert chunks.progress(session, planned, "permutation") == (0, 0, 0, 0)


def test_parts_load_in_chunk_order_whatever_the_finishing_order(planned: str) -> None:
    claimed = [claim_next(planned) for _ in SPANS]
    for chunk in reversed(claimed):
        assert chunk is not None
        with session_scope() as session:
            chunks.finish(session, chunk, shap_part(chunk.start, chunk.stop, fill=chunk.index))
    with session_scope() as session:
        parts = chunks.load_parts(session, planned, "shap")
    assert [part.span for part in parts] == SPANS
    assert [int(part.values[0, 0]) for part in parts] == [0, 1, 2]


def test_a_part_round_trips_arrays_scalars_and_spans_without_pickle() -> None:
    part = dataclasses.replace(shap_part(3, 7), values=np.arange(8.0).reshape(4, 2), error_estimate=0.25)
    decoded = ShapValues.from_record(chunks.decode_part(chunks.encode_part(part)))
    assert decoded.span == (3, 7)
    assert decoded.error_estimate == 0.25 and decoded.explainer == "tree"
    assert decoded.feature_names == ["a", "b"]
    np.testing.assert_array_equal(decoded.values, part.values)
    np.testing.assert_array_equal(decoded.base_values, part.base_values)
    objects = dataclasses.replace(part, values=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError):  # object arrays would need pickle: refused on the way back
        chunks.decode_part(chunks.encode_part(objects))


def test_the_prepared_job_is_stored_once_loaded_and_dropped(job_id: str) -> None:
    with session_scope() as session:
        assert chunks.load_prepared(session, job_id) is None
        chunks.store_prepared(session, job_id, {"model": "first"})
    with session_scope() as session:
        chunks.store_prepared(session, job_id, {"model": "second"})  # another attempt: the first stays
    with session_scope() as session:
        assert chunks.load_prepared(session, job_id) == {"model": "first"}
        working_data.drop_prepared(session, job_id)
    with session_scope() as session:
        assert session.get(JobPrepared, job_id) is None


def test_a_changed_prepared_blob_is_refused_before_it_is_unpickled(job_id: str) -> None:
    from shared.blobs.store import current_store
    from shared.ml.model import codec

    with session_scope() as session:
        chunks.store_prepared(session, job_id, {"model": "fitted"})
    with session_scope() as session:
        row = session.get(JobPrepared, job_id)
        assert row is not None
        body = current_store().get_bytes(row.blob_key)
        assert codec.sha256_of(body) in row.blob_key  # content addressed
        current_store().put_bytes(row.blob_key, codec.dump_object({"model": "swapped"}))
    with session_scope() as session, pytest.raises(codec.ModelIntegrityError):
        chunks.load_prepared(session, job_id)
