"""Which jobs go to the Dask cluster: xgboost jobs over one worker's memory bound, when a cluster is
configured and the job asks only for what the cluster path computes; the rest is refused as before."""

from __future__ import annotations

import pytest

from shared.ml.cost import DataShape, estimated_memory_bytes
from shared.ml.distributed import check_placement
from shared.ml.errors import LimitExceeded
from shared.ml.spec import JobSpec, ModelSpec

SHAPE = DataShape(n_train=700_000, n_test=300_000, n_features=20)  # 1,056 MB by the estimate
BOUND_MB = 500


def spec(model_type: str = "xgboost", impute: str = "none", **options: object) -> JobSpec:
    task = "regression" if options.get("return_pi") else "classification"
    model = ModelSpec(task=task, family="gbdt", model_type=model_type, impute=impute)
    return JobSpec(model=model, **{"interpretability": ("shap",), **options})


def test_the_shape_is_over_the_bound() -> None:
    assert estimated_memory_bytes(SHAPE) / 1e6 > BOUND_MB


def test_a_job_that_fits_one_worker_stays_there_with_or_without_a_cluster() -> None:
    small = DataShape(n_train=700, n_test=300, n_features=20)
    assert check_placement(small, spec("lightgbm"), BOUND_MB, cluster=True) is False
    assert check_placement(small, spec(), BOUND_MB, cluster=False) is False


def test_an_xgboost_job_over_the_bound_goes_to_the_cluster() -> None:
    assert check_placement(SHAPE, spec(), BOUND_MB, cluster=True) is True
    assert check_placement(SHAPE, spec(interpretability=()), BOUND_MB, cluster=True) is True


def test_without_a_cluster_it_is_refused_naming_the_bound_and_the_setting() -> None:
    with pytest.raises(LimitExceeded) as refused:
        check_placement(SHAPE, spec(), BOUND_MB, cluster=False)
    assert refused.value.code == "over_memory"
    assert "500 MB (worker_max_memory_mb)" in refused.value.message
    assert "1,000,000 rows x 20 features" in refused.value.message
    assert "dask_scheduler" in refused.value.message


@pytest.mark.parametrize(
    ("job", "named"),
    [
        (spec("lightgbm"), "model_type=xgboost"),
        (spec(interpretability=("permutation",)), "not permutation"),
        (spec(interpretability=("permutation", "shap")), "not permutation"),
        (spec(shap_interactions=True), "shap_interactions"),
        (spec(return_pi=True), "return_pi"),
        (spec(impute="median"), "impute"),
    ],
)
def test_what_the_cluster_does_not_compute_is_refused_with_the_reason(job: JobSpec, named: str) -> None:
    with pytest.raises(LimitExceeded) as refused:
        check_placement(SHAPE, job, BOUND_MB, cluster=True)
    assert refused.value.code == "over_memory"
    assert "worker_max_memory_mb" in refused.value.message and named in refused.value.message


def test_text_features_are_refused_for_the_cluster() -> None:
    with pytest.raises(LimitExceeded) as refused:
        check_placement(SHAPE, spec(), BOUND_MB, cluster=True, categorical=True)
    assert refused.value.code == "over_memory" and "numeric features only" in refused.value.message
