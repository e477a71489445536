"""Getting queued jobs to a worker: publish after commit, and sweep for what was not published or was lost.

A job is committed first and published second, so a broker outage never loses an accepted job: the
sweep publishes every queued job whose message was not sent, and requeues running jobs whose worker
stopped sending heartbeats. When the broker itself lost its messages (Redis restarted without
persistence), every queued job is published again. Publishing twice is harmless: the claim is conditional.
"""

from __future__ import annotations

import logging
from datetime import datetime

from shared.db import commit_without_flush_wait, session_scope
from shared.dispatch.queue import CONVERT_MODEL_TASK, RUN_JOB_TASK, broker_lost_messages, publish
from shared.dispatch.routing import broker_queue
from shared.settings import get_settings
from shared.store.jobstore import forget_dispatches, mark_dispatched, requeue_stale, undispatched
from shared.tables import utcnow

log = logging.getLogger(__name__)


def dispatch(job_id: str, queue: str) -> bool:
    """Publish one job to its queue ("small" or "large", from the job row); False (and the job stays
    undispatched) when the broker is unreachable.

    The message wakes a worker of that queue, which claims the fairest queued job of the queue (see
    `jobstore.claim_next`): one message per queued job, so every job gets its turn.
    """
    published = publish_job(job_id, queue)
    if published is None:
        return False
    mark_published([(job_id, published)])
    return True


def publish_job(job_id: str, queue: str) -> datetime | None:
    """Publish the job's message; when it was published, or None (logged) when the broker is unreachable."""
    try:
        publish(RUN_JOB_TASK, job_id, queue=broker_queue(queue, get_settings()))
    except Exception as exc:  # any broker failure: the sweep retries later
        log.warning("could not publish job %s: %s", job_id, exc)
        return None
    return utcnow()


def publish_conversion(job_id: str, fmt: str) -> bool:
    """Ask a worker (of the small queue: a conversion takes seconds) to make the job's model file in
    `fmt`; False (logged) when the broker is unreachable: a later download asks again
    (`shared.store.model_conversions`)."""
    try:
        publish(CONVERT_MODEL_TASK, job_id, fmt, queue=broker_queue("small", get_settings()))
    except Exception as exc:
        log.warning("could not publish the %s conversion of job %s's model: %s", fmt, job_id, exc)
        return False
    return True


def mark_published(jobs: list[tuple[str, datetime]]) -> None:
    """Record that these (job id, published at) were published, in one transaction."""
    with session_scope() as session:
        commit_without_flush_wait(session)  # a lost mark only makes the sweep publish the job again
        mark_dispatched(session, jobs)  # it holds the jobs' rows until the commit


def sweep() -> dict[str, int]:
    """One pass: requeue jobs of vanished workers and jobs the broker lost, then publish every
    undispatched queued job."""
    settings = get_settings()
    with session_scope() as session:
        requeued, _failed = requeue_stale(
            session, stale_after=settings.stale_after_seconds, max_attempts=settings.max_attempts
        )
    try:
        lost = broker_lost_messages()
    except Exception as exc:  # broker down: nothing can be published this time anyway
        log.warning("broker unreachable: %s", exc)
        return {"requeued": len(requeued), "dispatched": 0}
    if lost:
        with session_scope() as session:
            forgotten = forget_dispatches(session)
        if forgotten:
            log.warning("the broker lost its queue: publishing %d queued jobs again", len(forgotten))
    with session_scope() as session:
        # Once the queue is lost, every queued job is published now, however young and however many.
        pending = undispatched(session, older_than=0.0 if lost else 1.0, limit=None if lost else 100)
    sent = 0
    for job_id, queue in pending:
        if not dispatch(job_id, queue):
            break  # broker still down: try again next sweep
        sent += 1
    return {"requeued": len(requeued), "dispatched": sent}
