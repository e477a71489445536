"""The hook that sends an xgboost job too large for this worker's memory to the Dask cluster of
FITEXPLAIN_DASK_SCHEDULER, and its run there (`shared.ml.distributed.xgboost_dask`).

The decision is the API's at submit (`shared.ml.distributed.check_placement`), made again here from the
same numbers: the upload row's rows and features, the job's spec and the memory bound. A job that goes
to the cluster is not downloaded by this worker: the cluster reads the blob store itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.blobs.store import current_store
from shared.ml.cost import DataShape
from shared.ml.distributed import cluster_refusal, fits_one_worker
from shared.ml.phases import Phases
from shared.ml.spec import JobSpec
from shared.settings import Settings, get_settings
from shared.tables import Upload
from worker.computation import Progress

CONNECT_SECONDS = 30  # waiting for the scheduler before the job fails (and is retried by its attempts)


class ClusterUnavailable(Exception):
    """The scheduler of FITEXPLAIN_DASK_SCHEDULER did not answer: the job fails as `cluster_unavailable`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ClusterSource:
    """An upload the Dask cluster reads from the blob store, by its fsspec URL."""

    url: str


def cluster_source(upload: Upload | None, spec: JobSpec, settings: Settings) -> ClusterSource | None:
    """The upload for the cluster, when the job goes there; None when it runs in this worker."""
    if not settings.dask_scheduler or upload is None:
        return None
    shape = DataShape(n_train=upload.n_rows, n_test=0, n_features=upload.n_columns)
    if fits_one_worker(shape, settings.worker_max_memory_mb) or cluster_refusal(spec) is not None:
        return None
    return ClusterSource(current_store().url_of(upload.blob_key))


def run_on_dask(source: ClusterSource, spec: JobSpec, progress: Progress, phases: Phases) -> dict[str, Any]:
    """The job's result, computed by the cluster (run in the killable child: a kill closes the client,
    and the scheduler then drops the job's tasks)."""
    from distributed import Client

    from shared.ml.distributed.xgboost_dask import run_on_cluster

    settings = get_settings()
    try:
        # the default client of this process: xgboost.dask looks for one even when it is given a client
        client = Client(settings.dask_scheduler, timeout=CONNECT_SECONDS)
    except OSError as exc:  # a refused connection, or none within the timeout
        raise ClusterUnavailable(
            f"The Dask cluster at {settings.dask_scheduler} (FITEXPLAIN_DASK_SCHEDULER) did not answer "
            f"within {CONNECT_SECONDS} s: this job's data need more memory than one worker has "
            "(FITEXPLAIN_WORKER_MAX_MEMORY_MB), so it runs only there. Submit it again once the cluster "
            "is up."
        ) from exc
    with client:
        return run_on_cluster(
            client,
            source.url,
            settings.storage_options,
            spec,
            settings.limits(),
            partition_bytes=settings.dask_partition_mb * 2**20,
            progress=progress,
            phases=phases,
        )
