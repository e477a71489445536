"""Jobs too large for one worker's memory, fitted and explained on a Dask cluster (`xgboost.dask`).

This module decides, without importing Dask, which jobs go there: xgboost jobs whose estimated memory
(`shared.ml.cost.estimated_memory_bytes`) is above a worker's bound, asking for nothing the cluster path
does not compute (SHAP values, the metrics and predictions; no permutation importance, prediction
intervals or SHAP interactions). The API imports it to accept or refuse such a job at submit, the
worker to run it there; `shared.ml.distributed.xgboost_dask` (which imports Dask) runs it.
"""

from __future__ import annotations

from shared.ml.cost import DataShape, estimated_memory_bytes
from shared.ml.errors import LimitExceeded
from shared.ml.spec import JobSpec

#: The explanation methods the cluster path computes.
CLUSTER_METHODS = frozenset({"shap"})


def fits_one_worker(shape: DataShape, max_memory_mb: int) -> bool:
    """Whether the job's data fit the memory bound of one worker (`cost.estimated_memory_bytes`)."""
    return estimated_memory_bytes(shape) / 1e6 <= max_memory_mb


def cluster_refusal(spec: JobSpec) -> str | None:
    """Why the cluster path cannot run this job (a sentence), or None when it can."""
    if spec.model.family != "gbdt" or spec.model.model_type != "xgboost":
        return "only /gbdtclassification and /gbdtregression with model_type=xgboost run on the Dask cluster"
    others = sorted(set(spec.interpretability) - CLUSTER_METHODS)
    if others:
        return f"the Dask cluster computes interpretability=shap only, not {', '.join(others)}"
    if spec.shap_interactions:
        return "the Dask cluster does not compute SHAP interaction values (shap_interactions)"
    if spec.task == "regression" and spec.return_pi:
        return "the Dask cluster does not compute prediction intervals (return_pi)"
    if spec.model.impute != "none":
        return "the Dask cluster does not impute (impute); xgboost takes missing values as they are"
    return None


def check_placement(
    shape: DataShape, spec: JobSpec, max_memory_mb: int, cluster: bool, *, categorical: bool = False
) -> bool:
    """True when the job must run on the Dask cluster, False when one worker holds it; LimitExceeded
    (422 `over_memory`, the bound named) when it fits neither: no cluster is configured, or the cluster
    path cannot run it (`categorical`: some features hold text)."""
    if fits_one_worker(shape, max_memory_mb):
        return False
    reason = cluster_refusal(spec) if cluster else None
    if cluster and reason is None and categorical:
        reason = "the Dask cluster takes numeric features only, and some features hold text"
    if cluster and reason is None:
        return True
    needed_mb = estimated_memory_bytes(shape) / 1e6
    why = f"; {reason}" if reason else "; no Dask cluster takes larger xgboost jobs (dask_scheduler)"
    raise LimitExceeded(
        "over_memory",
        f"This job's data ({shape.n_train + shape.n_test:,} rows x {shape.n_features:,} features) needs "
        f"about {needed_mb:,.0f} MB in a worker, more than its {max_memory_mb:,} MB "
        f"(worker_max_memory_mb){why}: send fewer rows or features.",
        details={"limit": max_memory_mb, "setting": "FITEXPLAIN_WORKER_MAX_MEMORY_MB"},
    )
