"""A job's success and a submit of the same user, interleaved on Postgres in the order that deadlocks when
the success does not take the user's row first.

The success (`worker.keep_model.succeed_keeping_model`) updates the user's storage counts twice: its
result, then its kept model's card. A submit (`shared.limits.reserve_submission`) locks the user's row,
then the counts. The test stops the success between its two updates (a third transaction holds the stored
model's row, which keeping the card share-locks), starts the submit, and only then lets the success go
on. Each step waits for the lock it expects, read from `pg_blocking_pids`; no sleep. Both must commit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from shared.db import get_engine, get_sessionmaker, session_scope
from shared.limits import reserve_submission
from shared.ml.model.codec import sha256_of
from shared.settings import Settings
from shared.store.kept_models import ModelToKeep, card_of, keep_model
from shared.store.uploads import usage
from shared.tables import JobStatus, StoredModel, utcnow
from tests.inprocess.factories import Account, load_job, make_job, set_job
from tests.waiting import wait_until
from worker.keep_model import KeptModelPlan, succeed_keeping_model

RESULT = {"y_pred": [0, 1, 1], "accuracy": 2 / 3}
MODEL_BODY = b"a fitted model's pickle"
#: Long enough for a loaded machine; the deadlock, when there is one, is found after 1 s (deadlock_timeout).
TIMEOUT = 60.0


def blocked_by(pid: int | None) -> list[int]:
    """The backends that `pid`'s current lock wait waits for (empty: it waits for no lock)."""
    if pid is None:
        return []
    with get_engine().connect() as connection:
        found = connection.scalar(text("SELECT pg_blocking_pids(:pid)"), {"pid": pid})
    return list(found or [])


class Transaction(threading.Thread):
    """`steps(session)` in a transaction of its own, on a thread: its backend's pid, then its error."""

    def __init__(self, steps: Callable[[Session], Any]) -> None:
        super().__init__(daemon=True)
        self.steps = steps
        self.pid: int | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with session_scope() as session:
                self.pid = session.scalar(text("SELECT pg_backend_pid()"))
                self.steps(session)
        except BaseException as exc:  # reported by the test's thread
            self.error = exc


def test_a_success_keeping_a_model_and_a_submit_of_its_user_both_commit(
    alice: Account, service_settings: Settings
) -> None:
    model = ModelToKeep(MODEL_BODY, sha256_of(MODEL_BODY), [])
    earlier = make_job(alice.id)  # a deterministic re-run: the model is stored already
    with session_scope() as session:
        keep_model(session, earlier, alice.id, {"kept": True}, model)
    job_id = make_job(alice.id)
    set_job(job_id, status=JobStatus.running, worker="w:1", attempts=1, heartbeat_at=utcnow())
    plan = KeptModelPlan({"kept": True, "formats": []}, model)

    holder = get_sessionmaker()()  # holds the stored model's row, as a delete's release_model does
    try:
        holder.execute(select(StoredModel.sha256).where(StoredModel.sha256 == model.sha256).with_for_update())
        holder_pid = holder.scalar(text("SELECT pg_backend_pid()"))
        success = Transaction(
            lambda session: succeed_keeping_model(session, job_id, "w:1", RESULT, None, attempt=1, plan=plan)
        )
        success.start()
        # The result is stored and counted; keeping the card waits for the stored model's row.
        wait_until(lambda: blocked_by(success.pid) == [holder_pid], TIMEOUT, "the success to wait")
        submit = Transaction(lambda session: reserve_submission(session, alice.id, service_settings))
        submit.start()
        wait_until(lambda: blocked_by(submit.pid) == [success.pid], TIMEOUT, "the submit to wait")
    finally:
        holder.rollback()
        holder.close()
    for transaction in (success, submit):
        transaction.join(TIMEOUT)
        assert not transaction.is_alive()
    assert (success.error, submit.error) == (None, None)
    job = load_job(job_id)
    assert job is not None and job.status == JobStatus.succeeded
    with session_scope() as session:
        assert card_of(session, job_id) is not None
        assert usage(session, alice.id).models == 1  # one stored model, kept by both jobs
