"""Celery tasks: translate a job id into a run of the ML core and a row update. No ML logic here."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from functools import cache, partial
from pathlib import Path
from typing import Any, Literal

from celery import Task
from sqlalchemy.exc import OperationalError

from shared.blobs.store import BlobStoreUnreachable, CacheUnwritable, scratch_directory
from shared.db import commit_without_flush_wait, session_scope
from shared.dispatch import chunks
from shared.dispatch.queue import RUN_CHUNK_TASK, RUN_JOB_TASK
from shared.ml.errors import UserInputError
from shared.ml.ingest.dataset import with_test_features
from shared.ml.model.background_file import read_background
from shared.ml.model.codec import ModelIntegrityError
from shared.ml.model.predict.background import with_background
from shared.ml.model.predict.scoring import check_explainable, count_rows, read_batches
from shared.ml.model.predict.spec import PredictSpec, is_predict
from shared.ml.phases import Phases
from shared.ml.pipeline import PreparedJob, prepare, run
from shared.ml.spec import JobSpec
from shared.results.formats import parquet_to_store
from shared.results.predict_table import score_to_table
from shared.settings import Settings, get_settings
from shared.store import workers
from shared.store.backgrounds import background_of
from shared.store.jobstore import (
    claim_next,
    computation_died,
    computation_stopped,
    fail,
    heartbeat,
    still_running_on,
    succeed,
)
from shared.store.uploads import stored_upload_path, upload_path
from shared.tables import Job, JobStatus
from worker.app import app
from worker.cluster import ClusterSource, ClusterUnavailable, cluster_source, run_on_dask
from worker.computation import KillableExecutor, Outcome, Progress
from worker.fanout import FanOutRunner, compute_chunk
from worker.heartbeat import Heartbeat
from worker.keep_model import plan_model, succeed_keeping_model
from worker.predict import load_kept

log = logging.getLogger("fitexplain.worker")

CLAIM_RETRY_SECONDS = 1.0  # first delay before a message whose claim met no database runs again (doubling)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@cache
def executor() -> KillableExecutor:
    """This pool process's computation child (forked at its first job, replaced after a kill)."""
    return KillableExecutor(max_rss_kb=get_settings().worker_max_memory_per_child_kb)


def job_heartbeat(
    job_id: str, worker: str, attempt: int, settings: Settings, computation_stopped: Callable[[], bool]
) -> Heartbeat:
    """The job's lease, renewed every `heartbeat_seconds` while `worker` holds it in `attempt`; once the
    job is no longer ours (cancelled, or requeued after this process was silent too long) it is lost for
    good, and every later write of this attempt is refused (`jobstore.held`).

    The lease proves that the attempt makes progress: this thread beating shows that the supervisor runs,
    and a beat is skipped while `computation_stopped()` (the process computing the job is stopped), so a
    worker stopped in either part lets its lease run out and the job is requeued; the supervisor then
    finds the job no longer its own and kills the computation."""
    skipping = False

    def beat(progress: tuple[float, str] | None) -> bool:
        nonlocal skipping
        if computation_stopped():
            if not skipping:
                log.warning("job %s: its computation is stopped; its lease is not renewed", job_id)
            skipping = True
            return True  # not known to be lost yet: `still_wanted` sees the requeue
        skipping = False
        fraction, message = progress if progress else (None, None)
        with session_scope() as session:
            still_ours = heartbeat(session, job_id, worker, fraction, message, attempt=attempt)
        if not still_ours:
            _refused(job_id, attempt)
        return still_ours

    return Heartbeat(job_id, beat, settings.heartbeat_seconds)


def _still_held(beat: Heartbeat, job_id: str, me: str, attempt: int) -> bool:
    """The supervisor's check, every `cancel_poll_seconds`, that the attempt still holds its job (it may
    learn the loss before its heartbeat does: both say so in the same words)."""
    if beat.lost.is_set():
        return False
    if _still_ours(job_id, me, attempt):
        return True
    if not beat.lost.is_set():  # else the heartbeat thread learnt it meanwhile, and said so
        beat.lost.set()
        _refused(job_id, attempt)
    return False


def _refused(job_id: str, attempt: int) -> None:
    log.warning("job %s: attempt %d no longer holds it; its writes are refused", job_id, attempt)


@app.task(name=RUN_JOB_TASK, bind=True)
def run_job(self: Task[Any, Any], message_job_id: str) -> str:
    """Run the fairest queued job of the message's queue (usually, but not always, the message's job)."""
    settings = get_settings()
    me = worker_name()
    try:
        with session_scope() as session:
            outcome = claim_next(
                session,
                message_job_id,
                worker=me,
                stale_after=settings.stale_after_seconds,
                max_attempts=settings.max_attempts,
                recent_use_seconds=settings.fair_share_window_seconds,
            )
            if outcome.job is None:
                log.info("job %s not run: %s", message_job_id, outcome.reason)
                return outcome.reason
            job = outcome.job
            job_id, queue, attempt = job.id, job.queue, job.attempts
            claimed_at = time.monotonic()
            if job_id != message_job_id:
                log.info("message of job %s: ran job %s (fair share)", message_job_id, job_id)
            stored_spec = dict(job.spec)
            upload = outcome.upload  # read with the claim
            cluster = None  # the Dask cluster's job, or None
            if not is_predict(stored_spec):
                cluster = cluster_source(upload, JobSpec.from_json(stored_spec), settings)
    except OperationalError as exc:
        # Postgres is unreachable (or restarting) before the claim committed: the message is the job's
        # only wake-up (the sweep republishes only jobs never dispatched), so it must not be acked as
        # failed. It is sent again, later; a claim that did commit unseen is found running and stale.
        retries = self.request.retries
        log.warning("job %s: database unavailable at its claim (%s); retrying", message_job_id, exc.orig)
        raise self.retry(
            exc=exc, countdown=min(CLAIM_RETRY_SECONDS * 2**retries, 60), max_retries=None
        ) from exc

    unfetched: OSError | None = None
    try:
        # The computation's files go in a directory this process removes, also when the child is killed.
        with (
            job_heartbeat(job_id, me, attempt, settings, executor().stopped) as beat,
            scratch_directory(settings.home, "job-") as scratch,
        ):
            beat.record(0.0, "fitting")
            # Under the heartbeat: fetching a remote upload may take longer than the lease. A job for the
            # Dask cluster is not fetched: the cluster reads it from the blob store.
            try:
                source = cluster or upload_source(stored_upload_path(upload))
            except (CacheUnwritable, BlobStoreUnreachable) as exc:  # this machine's or the store's fault
                unfetched = exc
            else:
                ended = executor().run(
                    computation_of(job_id, me, attempt, source, stored_spec, queue, scratch),
                    time_limit=settings.soft_time_limit,
                    poll_seconds=settings.cancel_poll_seconds,
                    still_wanted=partial(_still_held, beat, job_id, me, attempt),
                    on_progress=beat.record,
                    on_started=partial(_record_started, me, job_id),
                )
    except Exception as exc:  # the supervision itself failed (the computation was killed): never a hang
        log.exception("job %s: supervising its computation failed", job_id)
        ended = Outcome(
            "finished", _fail(job_id, me, attempt, "internal_error", _internal_error_message(exc))
        )
    if unfetched is not None:
        return _not_started(self, job_id, me, attempt, unfetched, settings)
    with session_scope() as session:  # the computation is over: one commit frees the job and counts it
        # Not waited for on disk: it overlaps the next request's work, and a crash of Postgres that lost
        # it loses a count, and a cancelled job's `stopping` flag, which stops mattering once the job's
        # heartbeat is stale (shared.limits.holds_a_worker).
        commit_without_flush_wait(session)
        used = time.monotonic() - claimed_at
        computation_stopped(session, job_id, me, attempt=attempt, worker_seconds=used)
        workers.job_finished(session, me, _worker_outcome(ended))
    return _conclude(job_id, me, attempt, ended, settings)


def _not_started(
    task: Task[Any, Any], job_id: str, me: str, attempt: int, exc: OSError, settings: Settings
) -> str:
    """The job's upload could not be fetched, by a fault of this machine (its cache disk) or of the blob
    store, not of the job: queued again for any worker (the sweep publishes it). A machine whose disk
    failed also stops taking jobs, so that another machine runs it."""
    if isinstance(exc, CacheUnwritable):
        log.error(
            "worker %s stops taking jobs: %s. Job %s is queued again for another worker; free or fix the "
            "disk under FITEXPLAIN_HOME and start this worker again.",
            me,
            exc,
            job_id,
        )
        stop_this_worker(task)
    else:
        log.warning("job %s: its upload could not be fetched (%s); queued again", job_id, exc)
    with session_scope() as session:
        computation_stopped(session, job_id, me, attempt=attempt, worker_seconds=0.0)
        workers.job_finished(session, me, "stopped")
        done = computation_died(
            session,
            job_id,
            me,
            how=f"did not start: {exc}",
            max_attempts=settings.max_attempts,
            attempt=attempt,
            progress_message="requeued: the upload could not be fetched",
        )
    return f"not started: {done}"


def stop_this_worker(task: Task[Any, Any]) -> None:
    """Ask the worker running `task` for a warm shutdown (a broadcast to its node name): it stops
    consuming and exits once its running tasks end; a supervisor or restart policy may start it again."""
    node = task.request.hostname
    if task.request.is_eager or not node:
        return
    try:
        task.app.control.shutdown(destination=[node])
    except Exception:  # a broker without broadcasts (the embedded one): the worker goes on
        log.exception("worker %s could not ask itself to stop", node)


def _record_started(me: str, job_id: str) -> None:
    """The workers table's note of this worker's job (dashboard, fan-out's idle count), written once the
    child has computed for a while (`KillableExecutor.run`), rather than in the claim's transaction."""
    with session_scope() as session:
        commit_without_flush_wait(session)  # a note, rewritten at the job's end: not worth a disk flush
        workers.job_started(session, me, job_id)


def upload_source(path: Path | None) -> bytes | Path:
    """What the ML core loads of an upload stored at `path` (a local file: the blob itself, or a cached
    download of a remote one): the path, or empty bytes when the upload is gone (None)."""
    return b"" if path is None else path


def computation_of(
    job_id: str,
    me: str,
    attempt: int,
    source: bytes | Path | ClusterSource,
    spec: dict[str, Any],
    queue: str,
    scratch: Path,
) -> Callable[[Progress], str]:
    """The job's computation (picklable, for the killable child): a fit, or a predict job's scoring, which
    writes its result's Parquet form in `scratch`."""
    if is_predict(spec):
        assert not isinstance(source, ClusterSource)
        return partial(compute_predict, job_id, me, attempt, source, PredictSpec.from_json(spec), scratch)
    return partial(compute_job, job_id, me, attempt, source, JobSpec.from_json(spec), queue)


def compute_job(
    job_id: str,
    me: str,
    attempt: int,
    source: bytes | Path | ClusterSource,
    spec: JobSpec,
    queue: str,
    progress: Progress,
) -> str:
    """The job's computation, run in the killable child: fit, explain, store the result or the error."""
    settings = get_settings()
    phases = Phases()
    fitted: list[PreparedJob] = []
    try:
        if isinstance(source, ClusterSource):
            result = run_on_dask(source, spec, progress, phases)
        else:
            result = run(
                source,
                spec,
                settings.limits(),
                n_threads=settings.model_threads,
                progress=progress,
                explain_method=FanOutRunner(job_id, settings, queue=queue, worker=me),
                phases=phases,
                on_prepared=fitted.append,
                background=sent_background(job_id, spec.background.source),
            )
    except Exception as exc:
        return _computation_failed(job_id, me, attempt, exc)
    with phases.timed("keep"):  # a Dask job's model stays on the cluster: it has no card
        plan = plan_model(job_id, fitted[0], settings) if fitted else None
    with phases.timed("store"):
        # A cluster job's upload is larger than this worker holds: its stored Parquet form goes without
        # the test rows' feature values.
        local = None if isinstance(source, ClusterSource) else source
        parquet = _parquet_form(job_id, lambda: with_test_features(result, local, spec), settings)
        with session_scope() as session:
            stored = succeed_keeping_model(session, job_id, me, result, parquet, attempt=attempt, plan=plan)
    log.info("job %s phases: %s", job_id, phases)  # benchmarks/large_data.py reads this line
    if not stored:
        _refused(job_id, attempt)
    return "succeeded" if stored else "superseded"


def compute_predict(
    job_id: str,
    me: str,
    attempt: int,
    source: bytes | Path,
    spec: PredictSpec,
    scratch: Path,
    progress: Progress,
) -> str:
    """A predict job's computation, run in the killable child: score the upload with the kept model batch
    by batch, each batch written to the result's Parquet form in `scratch` and dropped (a result of fewer
    than `result_parquet_min_rows` rows is also kept whole, for its JSON), store the result or the error."""
    settings = get_settings()
    phases = Phases()
    progress(0.0, "loading the model")
    table = scratch / "result.parquet"
    try:
        with phases.timed("load"):
            kept = load_kept(spec.model_sha256)
            if spec.options.explains:
                asked = spec.options.background
                sent = sent_background(job_id, asked.source)
                kept = with_background(kept, asked, None if sent is None else read_background(sent))
                check_explainable(kept)
            n_rows = count_rows(source)
        result = score_to_table(
            kept,
            read_batches(source, settings.predict_batch_rows),
            spec.options,
            table,
            extra_columns=spec.extra_columns,
            keep_rows=n_rows < settings.result_parquet_min_rows,
            n_rows=n_rows,
            progress=lambda done, total: progress(0.95 * done / max(total, 1), f"scored {done}/{total} rows"),
            phases=phases,
        )
    except ModelIntegrityError as exc:
        log.error("job %s: its model's bytes failed their sha256 check: %s", job_id, exc)
        return _fail(job_id, me, attempt, exc.code, str(exc))
    except Exception as exc:
        return _computation_failed(job_id, me, attempt, exc)
    with phases.timed("store"), session_scope() as session:
        stored = succeed(session, job_id, me, result, table, attempt=attempt)
    log.info("job %s phases: %s", job_id, phases)  # benchmarks/predict_rows.py reads this line
    return "succeeded" if stored else "superseded"


def sent_background(job_id: str, source: str) -> bytes | None:
    """The background file sent with the job (its kept feature columns), when its spec names one."""
    if source != "upload":
        return None
    with session_scope() as session:
        return background_of(session, job_id)


def _parquet_form(job_id: str, result: Callable[[], dict[str, Any]], settings: Settings) -> bytes | None:
    """The result's Parquet form to store beside it (with the test rows' feature values), if it is large;
    None if it could not be made (the API then converts on request, as for small results)."""
    try:
        return parquet_to_store(result(), settings.result_parquet_min_rows)
    except Exception:
        log.exception("job %s: its result's Parquet form could not be made", job_id)
        return None


def _computation_failed(job_id: str, me: str, attempt: int, exc: Exception) -> str:
    """Record why the computation failed, unless the job was cancelled meanwhile: cancelling releases
    its upload, so a computation still reading it fails, and that is the cancel, not an error."""
    if not _still_ours(job_id, me, attempt):
        log.info("job %s stopped: no longer ours (its computation ended with %s)", job_id, type(exc).__name__)
        return "superseded"
    if isinstance(exc, UserInputError):
        return _fail(job_id, me, attempt, exc.code, exc.message)
    if isinstance(exc, ClusterUnavailable):
        log.warning("job %s: %s", job_id, exc.message)
        return _fail(job_id, me, attempt, "cluster_unavailable", exc.message)
    if isinstance(exc, MemoryError):
        message = "The job ran out of memory: explain fewer rows or features."
        return _fail(job_id, me, attempt, "out_of_memory", message)
    log.error("job %s crashed", job_id, exc_info=exc)
    return _fail(job_id, me, attempt, "internal_error", _internal_error_message(exc))


def _conclude(job_id: str, me: str, attempt: int, ended: Outcome, settings: Settings) -> str:
    """Record how the computation ended (each move to a final state writes the job's webhook outbox)."""
    if ended.ended == "finished":
        return ended.detail
    if ended.ended == "cancelled":
        log.info("job %s stopped: no longer ours", job_id)
        return "cancelled"
    if ended.ended == "time_limit":
        log.warning("job %s stopped: %s", job_id, ended.detail)
        _fail(
            job_id,
            me,
            attempt,
            "time_limit",
            f"The job ran past the time limit of {settings.soft_time_limit} s "
            "(FITEXPLAIN_SOFT_TIME_LIMIT): explain fewer rows or use a faster model.",
        )
        return "time_limit"
    log.error("job %s: its computation %s", job_id, ended.detail)
    with session_scope() as session:
        done = computation_died(
            session, job_id, me, how=ended.detail, max_attempts=settings.max_attempts, attempt=attempt
        )
    return f"computation {ended.detail}: {done}"


def _worker_outcome(ended: Outcome) -> Literal["done", "failed", "stopped"]:
    """How the job ended, as the workers table counts it."""
    if ended.ended == "finished":
        counted: dict[str, Literal["done", "failed"]] = {"succeeded": "done", "failed": "failed"}
        return counted.get(ended.detail, "stopped")
    return "stopped" if ended.ended == "cancelled" else "failed"


def _internal_error_message(exc: Exception) -> str:
    return f"Internal error ({type(exc).__name__}); it has been logged."


def _still_ours(job_id: str, me: str, attempt: int) -> bool:
    with session_scope() as session:
        return still_running_on(session, job_id, me, attempt=attempt)


def _fail(job_id: str, worker: str, attempt: int, code: str, message: str) -> str:
    with session_scope() as session:
        done = fail(session, job_id, code, message, worker=worker, attempt=attempt)
    return "failed" if done else "superseded"


_prepared: dict[str, PreparedJob] = {}  # the last job this computation child fitted for chunk work


def _prepared_for(job: Job, settings: Settings) -> PreparedJob:
    """The job's fitted model and arrays, as its own worker shared them; refitted (deterministic, so
    identical) only when they are gone. Loaded once per process."""
    if job.id not in _prepared:
        _prepared.clear()
        with session_scope() as session:
            shared = chunks.load_prepared(session, job.id)
            if shared is None:
                source = upload_source(upload_path(session, job.dataset_sha256))
        if shared is None:
            spec = JobSpec.from_json(job.spec)
            shared = prepare(
                source,
                spec,
                settings.limits(),
                n_threads=settings.model_threads,
                background=sent_background(job.id, spec.background.source),
            )
        _prepared[job.id] = shared
    return _prepared[job.id]


@app.task(name=RUN_CHUNK_TASK)
def run_chunk(job_id: str) -> int:
    """Help a running job: compute its unclaimed explanation chunks until none is left, in the killable
    child (stopped as soon as the job is no longer running, or at the time limit)."""
    settings = get_settings()
    ended = executor().run(
        partial(compute_chunks, job_id, worker_name()),
        time_limit=settings.soft_time_limit,
        poll_seconds=settings.cancel_poll_seconds,
        still_wanted=lambda: _job_running(job_id),
        on_progress=lambda *_: None,
    )
    if ended.ended != "finished":  # its chunk's heartbeat stops: the job's own worker recomputes it
        log.warning("chunk work for job %s stopped: %s (%s)", job_id, ended.ended, ended.detail)
        return 0
    return int(ended.detail)


def compute_chunks(job_id: str, me: str, progress: Progress) -> str:
    """Claim and compute the job's chunks while it runs; the number computed (run in the killable child)."""
    settings = get_settings()
    computed = 0
    while True:
        with session_scope() as session:
            job = session.get(Job, job_id)
            if job is None or job.status != JobStatus.running:
                return str(computed)
            chunk = chunks.claim_next(session, job_id, stale_after=settings.stale_after_seconds, worker=me)
            if chunk is None:
                return str(computed)
        try:
            prepared = _prepared_for(job, settings)
            compute_chunk(prepared, chunk, settings)
        except Exception:  # the job's own worker recomputes the chunk once its heartbeat is stale
            log.exception("chunk %s/%s/%s failed", job_id, chunk.method, chunk.index)
            return str(computed)
        computed += 1


def _job_running(job_id: str) -> bool:
    with session_scope() as session:
        job = session.get(Job, job_id)
        return job is not None and job.status == JobStatus.running
