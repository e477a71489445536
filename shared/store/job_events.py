"""Tell waiting API requests that a job finished: a Postgres NOTIFY on one channel, payload the job id.

The NOTIFY is issued inside the transaction that marks the job finished, so Postgres delivers it only
when that transaction commits (never for a rolled-back one), and a listener that hears it can already
read the finished row. A notification is only a hint: waiters also poll slowly, so a lost one (the
listener was reconnecting) delays an answer, never loses it. SQLite has no LISTEN: nothing is sent.

A small succeeded result rides along (`<job id> <base64 of its gzip body>`): the request waiting for it
answers at once instead of reading back what the worker just wrote (a session, the job and result rows,
the blob: about 2 ms of a trivial job's 50 here). The stored result stays the reference; the payload
is the same bytes, sent in the same commit.
"""

from __future__ import annotations

import base64
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, func, select
from sqlalchemy.orm import Session

from shared.db import on_postgres

CHANNEL = "fitexplain_jobs"
# Postgres refuses payloads of 8,000 bytes or more; base64 makes 4 characters of every 3 bytes.
BODY_IN_NOTIFICATION_MAX_BYTES = 5_000


def notify_finished(session: Session, job_id: str) -> None:
    """Announce, on commit, that `job_id` reached a final state (failed or cancelled; a success sends its
    notification with its UPDATE: `notify_column`). Nothing on SQLite."""
    if on_postgres(session):
        session.execute(select(notify_column(notification_payload(job_id))))


def notify_column(payload: str | BindParameter[str]) -> ColumnElement[Any]:
    """The NOTIFY as a column, for the RETURNING of the statement that finishes a job: sent only if that
    statement finds the job to finish, without a round trip of its own (Postgres only)."""
    return func.pg_notify(CHANNEL, payload)


def notification_payload(job_id: str, result_gzip: bytes | None = None) -> str:
    """The job's id, and its result's gzip body (base64) if it is small enough to ride along."""
    if result_gzip is not None and len(result_gzip) <= BODY_IN_NOTIFICATION_MAX_BYTES:
        return f"{job_id} {base64.b64encode(result_gzip).decode('ascii')}"
    return job_id


def parse_notification(payload: str) -> tuple[str, bytes | None]:
    """(job id, its result's gzip body if the notification carried it)."""
    job_id, _, body = payload.partition(" ")
    return job_id, base64.b64decode(body) if body else None
