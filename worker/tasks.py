"""Celery tasks: translate a job id into a run of the ML core and a row update. No ML logic here."""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from shared.db import session_scope
from shared.jobspec import job_spec_from_row
from shared.jobstore import claim, fail, heartbeat, succeed
from shared.ml.errors import UserInputError
from shared.models import Dataset
from shared.queue import RUN_JOB_TASK
from shared.settings import get_settings
from worker.app import app

log = logging.getLogger("fitexplain.worker")


class JobCancelled(Exception):
    """The job row left `running` under us (cancelled by its user, or reclaimed after a stall)."""


class Heartbeat:
    """Writes liveness and the latest progress to the job row every few seconds, from a thread."""

    def __init__(self, job_id: str, worker: str, interval: float) -> None:
        self.job_id = job_id
        self.worker = worker
        self.interval = interval
        self.progress: tuple[float, str] | None = None
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)

    def report(self, fraction: float, message: str) -> None:
        """The ML core's progress callback; it also stops the work once the job is no longer ours."""
        self.progress = (fraction, message)
        if self.lost.is_set():
            raise JobCancelled(self.job_id)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            fraction, message = self.progress if self.progress else (None, None)
            try:
                with session_scope() as session:
                    still_ours = heartbeat(session, self.job_id, self.worker, fraction, message)
            except Exception as exc:  # database blip: the next beat tries again
                log.warning("heartbeat for %s failed: %s", self.job_id, exc)
                continue
            if not still_ours:
                self.lost.set()


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@app.task(name=RUN_JOB_TASK)
def run_job(job_id: str) -> str:
    from shared.ml.pipeline import run

    settings = get_settings()
    me = worker_name()
    with session_scope() as session:
        outcome = claim(
            session,
            job_id,
            worker=me,
            stale_after=settings.stale_after_seconds,
            max_attempts=settings.max_attempts,
        )
        if outcome.job is None:
            log.info("job %s not run: %s", job_id, outcome.reason)
            return outcome.reason
        job = outcome.job
        spec = job_spec_from_row(job.endpoint, job.params)
        dataset = session.get(Dataset, job.dataset_sha256)
        content = dataset.content if dataset is not None else b""

    result: dict[str, Any] | None = None
    with Heartbeat(job_id, me, settings.heartbeat_seconds) as beat:
        beat.report(0.0, "fitting")
        try:
            result = run(
                content, spec, settings.limits(), n_threads=settings.model_threads, progress=beat.report
            )
        except JobCancelled:
            log.info("job %s stopped: no longer ours", job_id)
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
        return "failed"
    with session_scope() as session:
        stored = succeed(session, job_id, me, result)
    return "succeeded" if stored else "superseded"


def _fail(job_id: str, worker: str, code: str, message: str) -> None:
    with session_scope() as session:
        fail(session, job_id, code, message, worker=worker)
