"""Celery tasks: translate a job id into a run of the ML core and a row update. No ML logic here."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any, Literal

from celery.exceptions import SoftTimeLimitExceeded

from shared import chunks, workers
from shared.db import session_scope
from shared.jobstore import claim_next, fail, heartbeat, succeed
from shared.ml.errors import UserInputError
from shared.ml.pipeline import PreparedJob, prepare, run
from shared.ml.spec import JobSpec
from shared.queue import RUN_CHUNK_TASK, RUN_JOB_TASK
from shared.settings import Settings, get_settings
from shared.storage import upload_content
from shared.tables import Job, JobStatus
from worker.app import app
from worker.fanout import FanOutRunner, compute_chunk
from worker.heartbeat import Heartbeat, JobCancelled

log = logging.getLogger("fitexplain.worker")


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def job_heartbeat(job_id: str, worker: str, settings: Settings) -> Heartbeat:
    def beat(progress: tuple[float, str] | None) -> bool:
        fraction, message = progress if progress else (None, None)
        with session_scope() as session:
            return heartbeat(session, job_id, worker, fraction, message)

    return Heartbeat(job_id, beat, settings.heartbeat_seconds)


@app.task(name=RUN_JOB_TASK)
def run_job(message_job_id: str) -> str:
    """Run the fairest queued job of the message's queue (usually, but not always, the message's job)."""
    settings = get_settings()
    me = worker_name()
    with session_scope() as session:
        outcome = claim_next(
            session,
            message_job_id,
            worker=me,
            stale_after=settings.stale_after_seconds,
            max_attempts=settings.max_attempts,
        )
        if outcome.job is None:
            log.info("job %s not run: %s", message_job_id, outcome.reason)
            return outcome.reason
        job = outcome.job
        job_id, queue = job.id, job.queue
        if job_id != message_job_id:
            log.info("message of job %s: ran job %s (fair share)", message_job_id, job_id)
        workers.job_started(session, me, job_id)
        spec = JobSpec.from_json(job.spec)
        content = upload_content(session, job.dataset_sha256)

    result: dict[str, Any] | None = None
    with job_heartbeat(job_id, me, settings) as beat:
        beat.report(0.0, "fitting")
        try:
            result = run(
                content,
                spec,
                settings.limits(),
                n_threads=settings.model_threads,
                progress=beat.report,
                explain_method=FanOutRunner(job_id, settings, beat, queue=queue),
            )
        except JobCancelled:
            log.info("job %s stopped: no longer ours", job_id)
            _count_finished(me, "stopped")
            return "cancelled"
        except UserInputError as exc:
            _fail(job_id, me, exc.code, exc.message)
        except SoftTimeLimitExceeded:
            _fail(
                job_id,
                me,
                "time_limit",
                f"The job ran past the time limit of {settings.soft_time_limit} s "
                "(FITEXPLAIN_SOFT_TIME_LIMIT): explain fewer rows or use a faster model.",
            )
        except MemoryError:
            _fail(job_id, me, "out_of_memory", "The job ran out of memory: explain fewer rows or features.")
        except Exception as exc:
            log.exception("job %s crashed", job_id)
            _fail(job_id, me, "internal_error", f"Internal error ({type(exc).__name__}); it has been logged.")
    if result is None:
        _count_finished(me, "failed")
        return "failed"
    with session_scope() as session:
        stored = succeed(session, job_id, me, result)
        workers.job_finished(session, me, "done" if stored else "stopped")
    return "succeeded" if stored else "superseded"


def _count_finished(worker: str, outcome: Literal["done", "failed", "stopped"]) -> None:
    with session_scope() as session:
        workers.job_finished(session, worker, outcome)


def _fail(job_id: str, worker: str, code: str, message: str) -> None:
    with session_scope() as session:
        fail(session, job_id, code, message, worker=worker)


_prepared: dict[str, PreparedJob] = {}  # the last job this process fitted for chunk work


def _prepared_for(job: Job, settings: Settings) -> PreparedJob:
    """The job's fitted model and arrays, as its own worker shared them; refitted (deterministic, so
    identical) only when they are gone. Loaded once per process."""
    if job.id not in _prepared:
        _prepared.clear()
        with session_scope() as session:
            shared = chunks.load_prepared(session, job.id)
            if shared is None:
                content = upload_content(session, job.dataset_sha256)
        if shared is None:
            spec = JobSpec.from_json(job.spec)
            shared = prepare(content, spec, settings.limits(), n_threads=settings.model_threads)
        _prepared[job.id] = shared
    return _prepared[job.id]


@app.task(name=RUN_CHUNK_TASK)
def run_chunk(job_id: str) -> int:
    """Help a running job: compute its unclaimed explanation chunks until none is left."""
    settings = get_settings()
    computed = 0
    while True:
        with session_scope() as session:
            job = session.get(Job, job_id)
            if job is None or job.status != JobStatus.running:
                return computed
            chunk = chunks.claim_next(session, job_id, stale_after=settings.stale_after_seconds)
            if chunk is None:
                return computed
        try:
            prepared = _prepared_for(job, settings)
            compute_chunk(prepared, chunk, settings)
        except Exception:  # the job's own worker recomputes the chunk once its heartbeat is stale
            log.exception("chunk %s/%s/%s failed", job_id, chunk.method, chunk.index)
            return computed
        computed += 1
