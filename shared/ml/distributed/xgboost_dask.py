"""An xgboost job on a Dask cluster: the upload read in partitions, the fit by `xgboost.dask`, the
predictions and SHAP contributions (`pred_contribs`) computed partition by partition on the cluster.

This process reads only the upload's text columns (target, training_index) and row positions, makes the
same train/test split as the one-process path (`shared.ml.ingest.dataset.split_dataset`), and sends each
row's side and label to the cluster beside the feature partitions. What comes back is test-set sized:
the predictions and the SHAP values, which `max_shap_floats` already bounds. The result has the same
keys as `shared.ml.pipeline.run`'s.

The trees equal the one-process fit's when every feature has at most `max_bin` (256) distinct values:
the quantile sketch is then exact on both paths and the same cut points come out. The gradient sums are
then the same numbers added in another order (per worker, then across workers; in file order rather
than the split's shuffled order), so the leaf values agree to float rounding, and so do the predictions
and SHAP values (tests/service/test_dask_xgboost.py bounds the difference). With more distinct values
the distributed sketch merges per-worker summaries and its cut points, so the trees, may differ.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from shared.ml.errors import DataError
from shared.ml.estimators import build_model
from shared.ml.explain import background, tree
from shared.ml.explain.methods.base import merge_parts
from shared.ml.explain.methods.shap import ShapValues, check_shap_limits
from shared.ml.ingest import canonical
from shared.ml.ingest.dataset import Dataset, roles_of, split_dataset
from shared.ml.metrics import classification_result, regression_result
from shared.ml.phases import Phases
from shared.ml.spec import JobSpec, Limits
from shared.ml.validation import validate_job

if TYPE_CHECKING:
    from distributed import Client

SIDE = "__fitexplain_train"  # the column each partition gets: 1 for a training row, 0 for a test row
LABEL = "__fitexplain_label"  # the row's target (a class code for classification)
ROW = "__fitexplain_row"  # the row's number in the upload (0-based), to restore the split's order
SOURCE = "xgboost's native contributions (pred_contribs), computed per partition on the Dask cluster"


@dataclass
class ClusterReport:
    """How the job ran on the cluster: its partitions, the training partitions' bytes per worker
    address, and the fitted trees (xgboost's text dump)."""

    partitions: int = 0
    train_bytes_by_worker: dict[str, int] = field(default_factory=dict)
    trees: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Split:
    """The one-process split, as row numbers: the labels and the test rows' order."""

    dataset: Dataset  # its X arrays are placeholders (`load_checks`'s)
    side: np.ndarray  # per upload row: 1 train, 0 test
    label: np.ndarray  # per upload row: its y (float64; class codes for classification)
    test_rows: np.ndarray  # the test rows in the split's order


def run_on_cluster(
    client: Client,
    url: str,
    storage_options: dict[str, Any],
    spec: JobSpec,
    limits: Limits,
    *,
    partition_bytes: int,
    n_threads: int | None = None,
    progress: Callable[[float, str], None] | None = None,
    phases: Phases | None = None,
    report: ClusterReport | None = None,
) -> dict[str, Any]:
    """The job's result (as `pipeline.run` makes it), the work done by the cluster of `client` on the
    canonical Parquet file at `url` (an fsspec URL every Dask worker can read with `storage_options`)."""
    import dask.dataframe as dd
    import fsspec
    import xgboost.dask

    validate_job(spec)
    phases = phases or Phases()
    say = progress or (lambda fraction, message: None)
    report = report if report is not None else ClusterReport()
    say(0.0, "reading labels")
    with phases.timed("load"):
        with fsspec.open(url, "rb", **storage_options) as file:
            labels = canonical.read_labels(file)
        split = _split(labels, spec, limits)
        if "shap" in spec.interpretability:
            check_shap_limits(split.dataset, limits)
        positions = labels.table.column(canonical.POSITION).to_numpy()
        if np.any(np.diff(positions) <= 0):
            raise RuntimeError("the upload's row positions do not increase in file order")
        # the rows' sides and labels, sent once to every worker (a single task holding them would draw
        # every partition to the worker that has it)
        [rows_split] = client.scatter([(positions, split.side, split.label)], broadcast=True, hash=False)
        features = list(split.dataset.feature_names)
        frame = dd.read_parquet(
            url,
            columns=[*features, canonical.POSITION],
            storage_options=storage_options,
            split_row_groups="adaptive",
            blocksize=partition_bytes,
        )
        meta = _meta(features)
        frame = frame.map_partitions(_with_split, rows_split, meta=meta)
        train = _placed_in_turn(client, frame[frame[SIDE] == 1], meta)
        test = frame[frame[SIDE] == 0]
        report.partitions = frame.npartitions
    say(0.05, "fitting on the cluster")
    with phases.timed("fit"):
        train_matrix = xgboost.dask.DaskQuantileDMatrix(client, train[features], train[LABEL])
        report.train_bytes_by_worker = _spread(client, train_matrix)
        params = _booster_params(spec, n_threads, split.dataset.class_labels)
        trained = xgboost.dask.train(
            client, params, train_matrix, num_boost_round=spec.model.n_estimators, verbose_eval=False
        )
        booster = trained["booster"]
        report.trees = booster.get_dump(with_stats=False)
        del train_matrix  # its partitions leave the workers' memory before the test rows are read
    say(0.6, "predicting")
    with phases.timed("explain"):
        # one array of the test rows, their row numbers last (exact in float64): xgboost.dask refuses a
        # DataFrame for a 3-d output (multiclass contributions), and arrays carry no feature names
        values = test[[*features, ROW]].to_dask_array()
        X_test = values[:, :-1]
        predict = partial(xgboost.dask.predict, client, booster, X_test, validate_features=False)
        wanted: dict[str, Any] = {"rows": values[:, -1], "margin": predict(output_margin=True)}
        if spec.task == "classification":
            wanted["proba"] = predict()
        if "shap" in spec.interpretability:
            wanted["contribs"] = predict(pred_contribs=True)
        got = dict(zip(wanted, client.gather(client.compute(list(wanted.values()))), strict=True))
    order = _split_order(np.asarray(got.pop("rows")).astype(np.int64), split.test_rows)
    arrays = {name: np.asarray(values)[order] for name, values in got.items()}
    result = _metrics(spec, split.dataset, arrays)
    result["test_rows"] = split.test_rows.tolist()  # as `pipeline.run` gives them, in y_true's order
    if split.dataset.test_ids is not None:
        result["test_ids"] = split.dataset.test_ids
    if "shap" in spec.interpretability:
        result["interpretability"] = _shap(spec, split.dataset, arrays)
    say(1.0, "done")
    return result


def _split(labels: canonical.Labels, spec: JobSpec, limits: Limits) -> _Split:
    """`split_dataset` on the labels (the request's roles: its target and id column), keeping the row
    numbers it gathers for each side (the features are the cluster's)."""
    columns, names, categorical = canonical.labels_split_source(labels, roles_of(spec))
    if categorical:
        raise DataError(
            "categorical_on_cluster",
            f"Features {', '.join(names[position] for position in sorted(categorical))} hold text: the "
            "Dask cluster takes numeric features only.",
        )
    gathered: list[np.ndarray] = []

    def placeholder(rows: np.ndarray) -> np.ndarray:
        gathered.append(np.asarray(rows))
        return np.broadcast_to(0.0, (len(rows), len(names)))

    dataset = split_dataset(columns, (names, placeholder), spec.task, spec.seed, limits)
    train_rows, test_rows = gathered
    side = np.zeros(labels.n_rows, dtype=np.int8)
    side[train_rows] = 1
    label = np.empty(labels.n_rows)
    label[train_rows] = dataset.y_train
    label[test_rows] = dataset.y_test
    return _Split(dataset, side, label, test_rows)


def _with_split(part: pd.DataFrame, rows_split: tuple[np.ndarray, np.ndarray, np.ndarray]) -> pd.DataFrame:
    """A partition of the features with each row's side, label and row number (found by its position in
    the upload: the canonical file's positions increase in file order)."""
    positions, side, label = rows_split
    rows = np.searchsorted(positions, part[canonical.POSITION].to_numpy())
    part = part.drop(columns=[canonical.POSITION])
    part[SIDE] = side[rows]
    part[LABEL] = label[rows]
    part[ROW] = rows.astype(np.int64)
    return part


def _meta(feature_names: list[str]) -> pd.DataFrame:
    columns: dict[str, Any] = {name: pd.Series(dtype=np.float64) for name in feature_names}
    columns.update(
        {
            SIDE: pd.Series(dtype=np.int8),
            LABEL: pd.Series(dtype=np.float64),
            ROW: pd.Series(dtype=np.int64),
        }
    )
    return pd.DataFrame(columns)


def _booster_params(spec: JobSpec, n_threads: int | None, class_labels: list[str] | None) -> dict[str, Any]:
    """The booster parameters of the one-process estimator (`estimators.build_model`), with the objective
    its scikit-learn wrapper would choose for the task and number of classes."""
    params: dict[str, Any] = build_model(spec.model, n_threads).get_xgb_params()
    if class_labels is None:
        params["objective"] = "reg:squarederror"
    elif len(class_labels) > 2:
        params.update(objective="multi:softprob", num_class=len(class_labels))
    else:
        params["objective"] = "binary:logistic"
    return {name: value for name, value in params.items() if value is not None}


def _placed_in_turn(client: Client, frame: Any, meta: pd.DataFrame) -> Any:
    """The frame's partitions computed and held on the cluster's workers in turn. Left to the scheduler,
    a busy machine can draw every partition to the worker that asked for work first, past its memory.
    The placement is a preference: a partition whose worker has left runs on another."""
    import dask.dataframe as dd

    workers = sorted(client.scheduler_info()["workers"])
    held = [
        client.compute(part, workers=[workers[index % len(workers)]], allow_other_workers=True)
        for index, part in enumerate(frame.to_delayed())
    ]
    return dd.from_delayed(held, meta=meta, verify_meta=False)


def _spread(client: Client, matrix: Any) -> dict[str, int]:
    """Bytes of the training partitions each worker holds for the fit (DaskDMatrix's worker_map)."""
    futures = {address: list(parts) for address, parts in matrix.worker_map.items()}
    keys = [future.key for parts in futures.values() for future in parts]
    sizes = client.nbytes(keys, summary=False)
    return {
        address: sum(int(sizes.get(future.key, 0)) for future in parts) for address, parts in futures.items()
    }


def _split_order(rows_in_file_order: np.ndarray, test_rows: np.ndarray) -> np.ndarray:
    """Indices that put the cluster's test rows (in file order) in the split's order."""
    ranked = np.argsort(rows_in_file_order, kind="stable")  # the cluster's partitions come in file order
    found = rows_in_file_order[ranked]
    if not np.array_equal(found, np.sort(test_rows)):
        raise RuntimeError("the cluster's test rows are not the split's test rows")
    # found[j] is the j-th smallest test row; test_rows[i] is the split's i-th: i's rank among test rows
    rank = np.argsort(np.argsort(test_rows, kind="stable"), kind="stable")
    ordered: np.ndarray = ranked[rank]
    return ordered


def _metrics(spec: JobSpec, dataset: Dataset, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    margin = arrays["margin"].astype(np.float64)
    if spec.task == "regression":
        return regression_result(dataset.y_test, margin)  # reg:squarederror: the margin is the prediction
    assert dataset.class_labels is not None
    proba = arrays["proba"].astype(np.float64)
    if proba.ndim == 1:
        proba = np.column_stack([1.0 - proba, proba])
    # the wrapper's predict: class 1 when its probability is above 0.5 (binary), else the likeliest class
    y_pred = np.argmax(proba, axis=1).astype(np.int64)
    return classification_result(dataset.y_test, y_pred, proba, dataset.class_labels)


def _shap(spec: JobSpec, dataset: Dataset, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    contributions = arrays["contribs"].astype(np.float64)
    margin = arrays["margin"].astype(np.float64)
    tree.set_bias(contributions, margin)
    raw = tree.from_native({"values": contributions, "source": SOURCE}, spec.task, "xgboost")
    labels = dataset.class_labels
    described = tree.exact_description(raw["space"])
    record = background.not_used(spec.background)  # path-dependent TreeSHAP takes no background rows
    part = ShapValues(
        span=(0, contributions.shape[0]),
        values=raw["values"],
        base_values=raw["base_values"],
        feature_names=list(dataset.feature_names),
        class_labels=list(labels) if labels is not None else None,
        **{**described, "notes": background.with_note(described["notes"], record)},
        background=record,
    )
    return merge_parts([part]).to_json()
