"""xgboost jobs larger than one worker's memory run on a Dask cluster: a LocalCluster of 2 workers, each
with a memory limit below the data's size (the data are about 1.5x one worker's limit).

The features hold at most 100 distinct values each (below xgboost's 256 bins), so the quantile sketch
is exact on both paths: the trees are the one-process trees, their leaf values the same gradient sums
added in another order (per worker, then across workers). The splits (features and thresholds) are
compared exactly; leaf values, predictions and SHAP values to float32 rounding.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shared.ml.distributed.xgboost_dask import ClusterReport, run_on_cluster
from shared.ml.ingest.upload import ingest
from shared.ml.pipeline import run
from shared.ml.spec import JobSpec, Limits, ModelSpec
from tests.stack import Client, Stack

pytestmark = [pytest.mark.service]

ROWS = 200_000
FEATURES = 4
#: Bytes the cluster reads: the features, and the side, label and row number added to each row.
DATA_BYTES = ROWS * (FEATURES + 3) * 8
WORKER_LIMIT = int(DATA_BYTES / 1.5)
PARTITION_BYTES = 1 << 20  # whole row groups: 65,536 rows of a Parquet upload
PREDICTION_TOLERANCE = 1e-5  # float32 margins (xgboost predicts in float32) of values about 1


def frame(task: str) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    X = rng.integers(0, 100, size=(ROWS, FEATURES)) / 100  # 100 distinct values a feature
    signal = 3 * X[:, 0] - 2 * X[:, 1] * X[:, 2] + np.sin(6 * X[:, 3])
    data = pd.DataFrame(X, columns=[f"x{index}" for index in range(FEATURES)])
    noisy = signal + rng.normal(0, 0.3, ROWS)
    if task == "regression":
        data["target"] = np.round(noisy, 3)
    elif task == "binary":
        data["target"] = np.where(noisy > np.median(signal), "yes", "no")
    else:
        data["target"] = np.digitize(noisy, np.quantile(signal, [0.33, 0.66])).astype(str)
    return data


def parquet_bytes(data: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    data.to_parquet(buffer, index=False)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two worker processes, one thread each, each limited to WORKER_LIMIT bytes of data: above it a
    worker spills to disk. Pausing and terminating follow the process's whole memory (the interpreter and
    libraries alone are a hundred MB and more), so they are off at a limit this small."""
    import dask
    from distributed import LocalCluster

    thresholds = {
        "distributed.worker.memory.pause": False,
        "distributed.worker.memory.terminate": False,
        "distributed.worker.memory.spill": False,
    }
    with (
        dask.config.set(thresholds),
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            memory_limit=WORKER_LIMIT,
            dashboard_address=None,
        ) as local,
    ):
        yield local


def canonical_file(tmp_path: Path, data: pd.DataFrame) -> Path:
    upload = tmp_path / "upload.parquet"
    upload.write_bytes(parquet_bytes(data))
    return ingest(upload, tmp_path / "canonical.parquet", Limits()).path


def spec_for(task: str) -> JobSpec:
    task = "regression" if task == "regression" else "classification"
    model = ModelSpec(task=task, family="gbdt", model_type="xgboost", n_estimators=30, max_depth=4, seed=5)
    return JobSpec(model=model, interpretability=("shap",))


@pytest.mark.parametrize("task", ["regression", "binary", "multiclass"])
def test_the_cluster_fits_the_one_process_model_on_data_larger_than_a_worker(
    cluster: Any, tmp_path: Path, task: str
) -> None:
    from distributed import Client as DaskClient

    path = canonical_file(tmp_path, frame(task))
    spec, limits = spec_for(task), Limits()
    report = ClusterReport()
    with DaskClient(cluster) as client:
        distributed = run_on_cluster(
            client, path.as_uri(), {}, spec, limits, partition_bytes=PARTITION_BYTES, report=report
        )
    alone = run(path, spec, limits, n_threads=1)

    # the data were spread: each worker held less than its limit, the two together more than one limit
    assert report.partitions >= 3
    held = report.train_bytes_by_worker
    assert len(held) == 2, held
    assert all(0 < bytes_held < WORKER_LIMIT for bytes_held in held.values()), (held, WORKER_LIMIT)
    assert sum(held.values()) > WORKER_LIMIT

    # the same trees: the same splits, leaf values equal to float32 rounding (the one-process booster
    # names its features f0, f1, ...: it was fitted on an array)
    trees = [dump.replace("[x", "[f") for dump in report.trees]
    trees_alone = one_process_trees(path, spec, limits)
    assert [LEAF.sub("leaf", tree) for tree in trees] == [LEAF.sub("leaf", tree) for tree in trees_alone]
    np.testing.assert_allclose(leaves(trees), leaves(trees_alone), rtol=1e-5, atol=1e-7)
    assert distributed.keys() == alone.keys()
    assert distributed["y_true"] == alone["y_true"]  # the same split, in the same order
    if task == "regression":
        np.testing.assert_allclose(distributed["y_pred"], alone["y_pred"], atol=PREDICTION_TOLERANCE)
        scores = {name: value for name, value in alone["Score"].items() if value is not None}
        assert {name: distributed["Score"][name] for name in scores} == pytest.approx(scores, abs=1e-6)
    else:
        np.testing.assert_allclose(distributed["proba"], alone["proba"], atol=PREDICTION_TOLERANCE)
        reported = set(alone) - {"proba", "interpretability"}
        assert {key: distributed[key] for key in reported} == {key: alone[key] for key in reported}
    shap, shap_alone = distributed["interpretability"], alone["interpretability"]
    assert {key for key in shap if key != "notes"} == {key for key in shap_alone if key != "notes"}
    assert shap["feature_names"] == shap_alone["feature_names"]
    assert shap["output_space"] == shap_alone["output_space"]
    values, base = np.asarray(shap["values"]), np.asarray(shap["base_values"])
    np.testing.assert_allclose(values, shap_alone["values"], atol=PREDICTION_TOLERANCE)
    np.testing.assert_allclose(base, shap_alone["base_values"], atol=PREDICTION_TOLERANCE)
    # additivity: each row's values and base add up to the model's margin (float64 sums of float32 values)
    margin = values.sum(axis=1) + base
    if task == "regression":
        np.testing.assert_allclose(margin, distributed["y_pred"], atol=1e-9)
    elif task == "binary":
        proba = np.asarray(distributed["proba"])[:, 1]
        np.testing.assert_allclose(1 / (1 + np.exp(-margin[:, 1])), proba, atol=1e-6)
    else:  # each class's margin, through the softmax
        softmax = np.exp(margin) / np.exp(margin).sum(axis=1, keepdims=True)
        np.testing.assert_allclose(softmax, distributed["proba"], atol=1e-6)


LEAF = re.compile(r"leaf=(-?[0-9.e+-]+)")


def leaves(trees: list[str]) -> np.ndarray:
    return np.array([float(value) for tree in trees for value in LEAF.findall(tree)])


def one_process_trees(path: Path, spec: JobSpec, limits: Limits) -> list[str]:
    from shared.ml.pipeline import prepare

    return prepare(path, spec, limits, n_threads=1).model.get_booster().get_dump(with_stats=False)


@pytest.fixture(scope="module", params=["directory", "s3"])
def clustered(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, cluster: Any
) -> Iterator[Stack]:
    """A service whose workers hold 20 MB of a job's data (estimated), with the cluster beside it; its
    blobs in a local directory, or in S3 (moto), which the cluster's workers read with the service's
    storage options."""
    storage: dict[str, str] = {}
    if request.param == "s3":
        s3 = request.getfixturevalue("s3_server")
        storage = s3.env(s3.new_bucket())
    stack = Stack(
        tmp_path_factory.mktemp("dask"),
        extra_env={
            "FITEXPLAIN_DASK_SCHEDULER": cluster.scheduler_address,
            "FITEXPLAIN_WORKER_MAX_MEMORY_MB": "20",
            "FITEXPLAIN_DASK_PARTITION_MB": "1",
            **storage,
        },
    ).setup()
    stack.start_worker()
    stack.start_api()
    yield stack
    stack.stop()


def test_a_job_over_a_workers_memory_runs_on_the_cluster_through_the_service(clustered: Stack) -> None:
    client = Client(clustered.url, clustered.token("dana"))
    data = parquet_bytes(frame("regression"))
    query = {"model_type": "xgboost", "n_estimators": "30", "max_depth": "4", "seed": "5"}
    response = client.http.post(
        "/gbdtregression",
        params={**query, "interpretability": "shap"},
        files={"file": ("big.parquet", data, "application/vnd.apache.parquet")},
    )
    assert response.status_code == 202, response.text
    job = client.wait(response.json()["id"])
    assert job["status"] == "succeeded", job
    result = client.result(job["id"])
    assert "Dask cluster" in result["interpretability"]["notes"]
    assert len(result["y_pred"]) == len(result["interpretability"]["values"])

    # what the cluster path does not compute is refused at submit, the memory bound named
    refused = client.http.post(
        "/gbdtregression",
        params={**query, "interpretability": "permutation"},
        files={"file": ("big.parquet", data, "application/vnd.apache.parquet")},
    )
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert body["code"] == "over_memory"
    # refused while the upload is read (a job the cluster does not take is bounded by one worker)
    assert "20 MB (worker_max_memory_mb)" in body["detail"] and body["limit"] == 20
