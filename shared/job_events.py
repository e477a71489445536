"""Tell waiting API requests that a job finished: a Postgres NOTIFY on one channel, payload the job id.

The NOTIFY is issued inside the transaction that marks the job finished, so Postgres delivers it only
when that transaction commits (never for a rolled-back one), and a listener that hears it can already
read the finished row. A notification is only a hint: waiters also poll slowly, so a lost one (the
listener was reconnecting) delays an answer, never loses it. SQLite has no LISTEN: nothing is sent.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

CHANNEL = "fitexplain_jobs"


def notify_finished(session: Session, job_id: str) -> None:
    """Announce, on commit, that `job_id` reached a final state (succeeded, failed or cancelled)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:channel, :job_id)"), {"channel": CHANNEL, "job_id": job_id})
