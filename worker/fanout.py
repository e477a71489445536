"""Large explanations split into chunks that any worker computes; this worker merges them in order.

The job's own worker takes chunks too, so a job never waits for a free worker; messages published for
the other chunks let idle workers help. Completion is counted in the database (shared.dispatch.chunks).

Splitting costs something (the fitted job pickled into a blob with its arrays, 39 MB for 190k x 24; each
part stored and read back; the merge): for xgboost's and lightgbm's tabulated TreeSHAP (about 10 us a row
at depth 3), as much as the explanation itself below a few hundred thousand rows, hence the trees' high
FITEXPLAIN_FANOUT_MIN_ROWS. And a job fans out only when the workers table shows another live, idle worker
on its queue; alone, its worker explains in one piece.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

from shared.db import session_scope
from shared.dispatch import chunks
from shared.dispatch.queue import RUN_CHUNK_TASK, publish
from shared.dispatch.routing import broker_queue
from shared.ml.explain.methods import explanation_method
from shared.ml.pipeline import (
    PreparedJob,
    SpanProgress,
    cheap_to_explain,
    explain,
    merge_explanations,
    plan_chunks,
)
from shared.settings import Settings
from shared.store import workers, working_data
from worker.heartbeat import Heartbeat, JobCancelled

log = logging.getLogger("fitexplain.worker")


def cores_here(settings: Settings) -> int:
    """The cores this machine gives its workers' jobs: FITEXPLAIN_WORKER_CORES, else the ones this process
    may run on (a container's CPU quota is not visible here: set the setting there)."""
    return settings.worker_cores or len(os.sched_getaffinity(0))


def fanout_spans(
    prepared: PreparedJob, method: str, settings: Settings, helpers: Callable[[], int]
) -> list[tuple[int, int]]:
    """The chunks for a method, or a single span when the work is too small to be worth splitting or no
    other worker would share it (`helpers()`: how many idle ones could take chunks now; asked only when
    the work is large enough).

    Tree models are about a thousand times cheaper to explain than others, so each kind has its own
    threshold and chunk size (in test rows); the method turns that into units (rows or features).
    """
    n_rows = prepared.dataset.X_test.shape[0]
    if cheap_to_explain(prepared):
        min_rows, chunk_rows = settings.fanout_min_rows, settings.fanout_chunk_rows
    else:
        min_rows, chunk_rows = settings.fanout_min_rows_agnostic, settings.fanout_chunk_rows_agnostic
    explainer = explanation_method(method)
    if n_rows < min_rows or helpers() < 1:
        return [(0, explainer.work(prepared))]
    return plan_chunks(prepared, method, explainer.units_per_chunk(prepared, chunk_rows))


def compute_chunk(prepared: PreparedJob, chunk: chunks.ClaimedChunk, settings: Settings) -> None:
    """Compute one claimed chunk and store it, beating the chunk's heartbeat meanwhile."""

    def beat(_: object) -> bool:
        with session_scope() as session:
            chunks.beat(session, chunk)
        return True

    with Heartbeat(f"{chunk.job_id}-{chunk.method}-{chunk.index}", beat, settings.heartbeat_seconds):
        part = explain(prepared, chunk.method, settings.limits(), span=(chunk.start, chunk.stop))
    with session_scope() as session:
        chunks.finish(session, chunk, part)


class FanOutRunner:
    """A pipeline MethodRunner that fans large explanations out across workers."""

    def __init__(
        self,
        job_id: str,
        settings: Settings,
        job_heartbeat: Heartbeat | None = None,
        queue: str = "small",
        worker: str = "",
    ) -> None:
        self.job_id = job_id
        self.settings = settings
        self.job_heartbeat = job_heartbeat
        self.queue = queue  # the job's queue: its chunks go there too, never ahead of other queues' jobs
        self.worker = worker  # this worker's row in the workers table (never its own helper)

    def helpers(self) -> int:
        """Idle live workers, other than this one, that take messages from the job's queue and add cores."""
        cores = cores_here(self.settings)
        with session_scope() as session:
            return workers.idle_helpers(
                session,
                me=self.worker,
                queue=broker_queue(self.queue, self.settings),
                stale_after=self.settings.stale_after_seconds,
                threads_per_job=self.settings.model_threads or cores,  # None: a job takes every core
                cores_here=cores,
            )

    def __call__(self, prepared: PreparedJob, method: str, progress: SpanProgress) -> dict[str, Any]:
        spans = fanout_spans(prepared, method, self.settings, self.helpers)
        if len(spans) == 1:
            part = explain(prepared, method, self.settings.limits(), progress=progress)
            return merge_explanations(prepared, method, [part], arrays=True)
        with session_scope() as session:
            if not chunks.still_running(session, self.job_id):
                raise JobCancelled  # cancelled meanwhile: store nothing that would outlive it
            chunks.create_chunks(session, self.job_id, method, spans)
            chunks.store_prepared(session, self.job_id, prepared)
        for _ in range(len(spans) - 1):
            try:
                publish(RUN_CHUNK_TASK, self.job_id, queue=broker_queue(self.queue, self.settings))
            except Exception as exc:  # no helpers then: this worker computes every chunk itself
                log.warning("could not publish chunk work for %s: %s", self.job_id, exc)
                break
        delay = 0.2
        while True:
            if self.job_heartbeat is not None:  # in a killable child, the supervisor stops the work
                self.job_heartbeat.check()
            with session_scope() as session:
                chunk = chunks.claim_next(
                    session, self.job_id, stale_after=self.settings.stale_after_seconds, worker=self.worker
                )
            if chunk is not None:
                compute_chunk(prepared, chunk, self.settings)
                delay = 0.2
            with session_scope() as session:
                done, total, units_done, units_total = chunks.progress(session, self.job_id, method)
            progress(units_done, units_total)
            if done == total:
                break
            if chunk is None:  # other workers hold the remaining chunks: wait for them
                time.sleep(delay)
                delay = min(delay * 1.5, 2.0)
        with session_scope() as session:
            parts = chunks.load_parts(session, self.job_id, method)
            working_data.drop_prepared(session, self.job_id)
        return merge_explanations(prepared, method, parts, arrays=True)
