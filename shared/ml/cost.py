"""How long a job will keep one worker busy, estimated before anything is fitted.

`estimate_cost(spec, shape)` is a pure function of the JobSpec and the dataset's shape (rows, features,
classes) that returns worker-seconds on the reference machine (2 cores, one model thread per worker),
split into parsing, fitting, permutation importance and SHAP. The service stores it on the job, refuses
jobs above its per-job budget, and routes expensive jobs to the large queue.

The model counts the work each step does and multiplies by a measured cost per unit:
- boosted trees: rounds x trees a round (one per class above two) x (a fixed cost per tree + a cost per
  training cell per level); a prediction visits `depth` nodes of every tree; TreeSHAP costs
  trees x leaves x depth a row (Lundberg et al.'s O(TLD)) per explained row;
- scikit-learn models under nnetsauce: the base model sees the features plus the hidden ones; forests
  fit 100 fully grown trees, anything else is a linear-cost model;
- permutation importance predicts 1 + 10 x features copies of the test rows;
- model-agnostic SHAP spends at most the explainer's evaluation budget per row (exact enumeration of
  2^p coalitions x background rows when that is smaller); with many features the sampler uses all of it
  (digits, 64 features: 19,900 of 20,000 evaluations a row), with few it often stops far sooner (boston:
  400), which only small jobs see;
- a nnetsauce classifier over a small forest is explained by nnetsauce-tree instead: one game per (row,
  background row) pair, its cost per pair growing with the features. Which explainer runs is decided on
  the fitted trees' sizes; before the fit, few classes on at most NNETSAUCE_TREE_MAX_TRAIN rows stand for
  "small trees" (breast cancer, wine and iris are; digits is not).

How the constants were measured: each unit was timed on its own on the reference machine (one model
thread; e.g. 200 trees of each library fitted on 100 x 4 and 5,000 x 20 rows for the per-tree and
per-cell costs; predict and TreeSHAP timed on 2,000 rows of 200-tree models of depth 6), then set against
whole jobs in CPU seconds by `benchmarks/cost_calibration.py`, which prints each job's estimate beside
its measured time (docs/performance.md): every job of a second or more is estimated at 0.8x to 2x,
on the high side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from shared.ml.errors import LimitExceeded
from shared.ml.explain.budgets import AGNOSTIC_EVALS_PER_ROW, PERMUTATION_REPEATS
from shared.ml.ingest.bounds import memory_bytes
from shared.ml.ingest.dataset import Dataset
from shared.ml.spec import GbdtType, JobSpec

#: Default n_estimators of scikit-learn's forests (the ml endpoints use the base model's defaults).
FOREST_TREES = 100
FOREST_NAMES = ("RandomForest", "ExtraTrees")

#: Fixed cost of a job in a worker (claim, heartbeat, result encoding of a small result), seconds.
JOB_OVERHEAD_SECONDS = 0.2
#: Parsing and validating a CSV cell, done twice (API and worker), seconds.
PARSE_SECONDS_PER_CELL = 6e-7
#: Encoding one float of the SHAP result.
RESULT_SECONDS_PER_FLOAT = 5e-8


@dataclass(frozen=True)
class BoosterCosts:
    """Measured costs of one gradient-boosting library, in seconds (see benchmarks/cost_calibration.py)."""

    per_tree: float  # fixed cost of growing one tree
    per_cell_level: float  # per training row x feature x tree level
    per_node_predict: float  # one node visit when predicting one row
    per_leaf_shap: float  # one leaf x level of one tree in TreeSHAP, per explained row
    min_leaf_rows: int  # the library's default minimum rows in a leaf
    max_leaves: int | None  # the library's default cap on leaves (lightgbm's num_leaves)


BOOSTERS: dict[GbdtType, BoosterCosts] = {
    "gradientboosting": BoosterCosts(1e-3, 7e-8, 1e-8, 8e-8, 1, None),
    "lightgbm": BoosterCosts(5e-4, 2e-8, 3e-8, 4e-8, 20, 31),
    "xgboost": BoosterCosts(4e-4, 7e-9, 2e-9, 3e-8, 1, None),
    "catboost": BoosterCosts(2e-3, 2.5e-8, 1e-9, 1.8e-8, 1, None),
}
#: CatBoost grows symmetric trees: at every level it scores each feature's 254 borders in every leaf, so a
#: tree costs features x borders x 2^depth on top of the pass over the rows (depth 16 is 65,536 leaves).
CATBOOST_BORDERS = 254
CATBOOST_PER_BORDER_LEAF = 9e-9
#: scikit-learn forest (fully grown trees): per training row x log2(rows) x sqrt(features) x tree.
FOREST_FIT_PER_UNIT = 2e-7
FOREST_FIT_PER_TREE = 1.5e-3  # a tree's fixed cost, which dominates on small data
FOREST_PREDICT_PER_NODE = 3.5e-9
FOREST_SHAP_PER_LEAF = 4e-8
#: Any other scikit-learn model: per training cell, and per predicted cell.
GENERIC_FIT_PER_CELL = 2e-6
GENERIC_PREDICT_PER_CELL = 5e-8
#: nnetsauce adds a fixed cost to every predict call and a cost per hidden cell.
NNETSAUCE_CALL_SECONDS = 0.015
NNETSAUCE_PER_HIDDEN_CELL = 2e-8
#: nnetsauce-tree: seconds per (explained row, background row) pair and feature (breast cancer: 16 us a
#: pair at 30 features), and when it is expected to run (see `_nnetsauce_tree_route`).
NNETSAUCE_TREE_PER_PAIR_FEATURE = 7e-7
NNETSAUCE_TREE_MAX_CLASSES = 3
NNETSAUCE_TREE_MAX_TRAIN = 1_000
#: Rows a batched predict call holds (permutation and SHAP stack their copies into few large calls).
PREDICT_BATCH_CELLS = 4_000_000


@dataclass(frozen=True)
class DataShape:
    """What the estimate needs to know of the data: rows on each side of the split, features, classes."""

    n_train: int
    n_test: int
    n_features: int
    n_classes: int | None = None  # None for regression
    n_categorical: int = 0  # categorical features (one-hot inside every model but the boosters)

    @property
    def n_outputs(self) -> int:
        return self.n_classes or 1


@dataclass(frozen=True)
class CostEstimate:
    """Estimated worker-seconds of each part of a job."""

    parse: float
    fit: float
    permutation: float
    shap: float
    tree_shap: bool = True  # SHAP by TreeSHAP (cost: trees x leaves), else the model-agnostic sampler

    @property
    def total(self) -> float:
        return JOB_OVERHEAD_SECONDS + self.parse + self.fit + self.permutation + self.shap

    def largest_part(self) -> str:
        parts = {"fit": self.fit, "permutation": self.permutation, "shap": self.shap, "parse": self.parse}
        return max(parts, key=lambda name: parts[name])


def estimate_cost(spec: JobSpec, shape: DataShape, background_rows: int = 500) -> CostEstimate:
    """Estimated worker-seconds of `spec` on data of `shape` (background rows: the SHAP background cap, or
    an uploaded background's rows)."""
    model = _model_costs(spec, shape)
    uploaded = spec.background.source == "upload"
    n_background = background_rows if uploaded else min(shape.n_train, background_rows)
    permutation = 0.0
    if "permutation" in spec.interpretability:
        copies = 1 + PERMUTATION_REPEATS * shape.n_features
        permutation = model.predict_rows(copies * shape.n_test, shape.n_features)
    shap = 0.0
    if "shap" in spec.interpretability:
        n_floats = shape.n_test * shape.n_features * shape.n_outputs
        shap = RESULT_SECONDS_PER_FLOAT * n_floats
        if model.shap_per_row is not None:
            interactions = shape.n_features + 1 if spec.shap_interactions else 1
            shap += shape.n_test * model.shap_per_row * interactions
        else:
            shap += _agnostic_shap(spec, shape, model, n_background)
    parse = 2 * PARSE_SECONDS_PER_CELL * (shape.n_train + shape.n_test) * (shape.n_features + 1)
    fit = model.fit
    if spec.task == "regression" and spec.return_pi and spec.pi_method == "localconformal":
        fit += _forest_fit(shape.n_train // 2, shape.n_features)  # its error model: extra trees
    tree_shap = model.shap_per_row is not None
    return CostEstimate(parse=parse, fit=fit, permutation=permutation, shap=shap, tree_shap=tree_shap)


def estimate_predict_cost(
    spec: JobSpec, shape: DataShape, *, explain: bool, background_rows: int = 500
) -> CostEstimate:
    """Estimated worker-seconds of scoring `shape.n_test` new rows with the kept model of a job fitted as
    `spec` on `shape.n_train` training rows: parsing, predicting and, with `explain`, SHAP on every row (a
    threshold may explain fewer: the estimate is the bound). Nothing is fitted: `fit` is loading the model,
    a small constant."""
    model = _model_costs(spec, shape)
    explained = replace(spec, interpretability=("shap",) if explain else (), shap_interactions=False)
    shap = estimate_cost(explained, shape, background_rows).shap
    predict = model.predict_rows(shape.n_test, shape.n_features) * (2 if spec.task == "classification" else 1)
    parse = 2 * PARSE_SECONDS_PER_CELL * shape.n_test * (shape.n_features + 1)
    return CostEstimate(
        parse=parse,
        fit=MODEL_LOAD_SECONDS + predict,
        permutation=0.0,
        shap=shap,
        tree_shap=model.shap_per_row is not None,
    )


#: Loading a kept model in a worker (reading its blob, checking its sha256, unpickling), seconds.
MODEL_LOAD_SECONDS = 0.1


def _agnostic_shap(spec: JobSpec, shape: DataShape, model: _ModelCosts, n_background: int) -> float:
    """Seconds of SHAP by nnetsauce-tree (a small forest under nnetsauce) or the model-agnostic explainer."""
    if _nnetsauce_tree_route(spec, shape):
        pairs = shape.n_test * n_background
        return pairs * shape.n_features * NNETSAUCE_TREE_PER_PAIR_FEATURE
    exact_evals = 2**shape.n_features * n_background if shape.n_features <= 30 else math.inf
    evals = min(exact_evals, AGNOSTIC_EVALS_PER_ROW)
    return model.predict_rows(shape.n_test * evals, shape.n_features)


def _nnetsauce_tree_route(spec: JobSpec, shape: DataShape) -> bool:
    """Whether SHAP will likely go through nnetsauce-tree: a nnetsauce classifier over a forest whose
    trees stay small (few classes, few training rows)."""
    model = spec.model
    name = model.base_model or "RandomForestClassifier"
    return (
        spec.task == "classification"
        and model.family == "ml"
        and model.n_hidden_features > 0
        and name.startswith(FOREST_NAMES)
        and shape.n_categorical == 0  # a one-hot model is explained by masking its original columns
        and (shape.n_classes or 2) <= NNETSAUCE_TREE_MAX_CLASSES
        and shape.n_train <= NNETSAUCE_TREE_MAX_TRAIN
    )


def check_budget(estimate: CostEstimate, budget_seconds: float) -> None:
    """LimitExceeded (a 422 at submit) when the job would keep a worker busier than the budget allows."""
    if estimate.total <= budget_seconds:
        return
    raise LimitExceeded(
        "over_budget",
        f"This job is estimated at {estimate.total:,.0f} worker-seconds (fit {estimate.fit:,.0f} s, "
        f"permutation {estimate.permutation:,.0f} s, SHAP {estimate.shap:,.0f} s), more than the per-job "
        f"budget of {budget_seconds:,.0f} s (max_job_seconds). {_advice(estimate)}",
    )


def estimated_memory_bytes(shape: DataShape) -> int:
    """Bytes a worker needs for the job's data (`shared.ml.ingest.bounds.memory_bytes`)."""
    return memory_bytes(shape.n_train + shape.n_test, shape.n_features)


def _advice(estimate: CostEstimate) -> str:
    part = estimate.largest_part()
    if part == "shap" and estimate.tree_shap:
        return (
            "TreeSHAP costs trees x leaves for every explained row: use fewer n_estimators or a smaller "
            "max_depth, or explain fewer test rows (mark fewer rows training_index = 0)."
        )
    return {
        "fit": "Use fewer n_estimators, a smaller max_depth, fewer hidden features or fewer training rows; "
        "for many classes, lightgbm or xgboost instead of gradientboosting.",
        "permutation": "Use fewer test rows or features, a faster model, or interpretability=shap only.",
        "shap": "Explain fewer test rows (mark fewer rows training_index = 0), use fewer features, or a "
        "tree model (exact TreeSHAP is far cheaper than model-agnostic SHAP).",
        "parse": "Send fewer rows or columns.",
    }[part]


@dataclass(frozen=True)
class _ModelCosts:
    fit: float
    predict_per_row: float  # seconds to predict one row in a large batch
    call_seconds: float  # fixed cost of one predict call
    shap_per_row: float | None  # TreeSHAP seconds per row, or None for the model-agnostic explainer

    def predict_rows(self, n_rows: float, n_features: int) -> float:
        calls = math.ceil(n_rows * max(n_features, 1) / PREDICT_BATCH_CELLS)
        return n_rows * self.predict_per_row + calls * self.call_seconds


def _model_costs(spec: JobSpec, shape: DataShape) -> _ModelCosts:
    if spec.model.family == "gbdt":
        return _booster_costs(spec, shape)
    return _sklearn_costs(spec, shape)


def _booster_costs(spec: JobSpec, shape: DataShape) -> _ModelCosts:
    model = spec.model
    costs = BOOSTERS[model.model_type]
    n_classes = shape.n_classes or 1
    multiclass = n_classes > 2
    if model.model_type == "catboost":
        trees = model.n_estimators  # one symmetric tree a round, with a value per class in each leaf
        leaves = 2**model.max_depth
        depth = model.max_depth
        per_tree = costs.per_tree + costs.per_cell_level * shape.n_train * shape.n_features * depth
        per_tree *= 1 + n_classes / 10 if multiclass else 1
        per_tree += CATBOOST_PER_BORDER_LEAF * shape.n_features * CATBOOST_BORDERS * leaves
    else:
        trees = model.n_estimators * (n_classes if multiclass else 1)
        leaves = min(2**model.max_depth, max(2, shape.n_train // costs.min_leaf_rows))
        if costs.max_leaves is not None:
            leaves = min(leaves, costs.max_leaves)
        depth = min(model.max_depth, math.ceil(math.log2(leaves)) + 1)
        per_tree = costs.per_tree + costs.per_cell_level * shape.n_train * shape.n_features * depth
    return _ModelCosts(
        fit=trees * per_tree,
        predict_per_row=trees * depth * costs.per_node_predict,
        call_seconds=1e-3,
        shap_per_row=trees * leaves * depth * _per_leaf_shap(model.model_type, model.max_depth, costs),
    )


#: xgboost's and lightgbm's trees go through the tabulated TreeSHAP kernel
#: (shared/ml/explain/_tabulated_treeshap.py) up to this depth: one row x tree x leaf x level measured
#: 1.5e-9 s at depth 3 and 7.5e-9 s at depth 6 (100 trees, 24 features, one thread), against 1.6e-8 s for
#: xgboost's own pred_contribs and 2.2e-8 s for lightgbm's pred_contrib.
TABULATED_PER_LEAF_SHAP = {4: 3e-9, 6: 5.5e-9}


def _per_leaf_shap(model_type: str, max_depth: int, costs: BoosterCosts) -> float:
    if model_type in ("xgboost", "lightgbm"):
        for deepest, seconds in TABULATED_PER_LEAF_SHAP.items():
            if max_depth <= deepest:
                return seconds
    return costs.per_leaf_shap


def _sklearn_costs(spec: JobSpec, shape: DataShape) -> _ModelCosts:
    model = spec.model
    hidden = model.n_hidden_features
    n_inputs = shape.n_features + hidden
    wrapped = hidden > 0
    name = model.base_model or ("RandomForestClassifier" if spec.task == "classification" else "ElasticNet")
    n_train = max(shape.n_train, 2)
    if name.startswith(FOREST_NAMES):
        depth = 2 * math.log2(n_train)  # fully grown, unbalanced trees
        leaves = n_train
        fit = _forest_fit(n_train, n_inputs)
        predict = FOREST_TREES * depth * FOREST_PREDICT_PER_NODE
        tree_shap = FOREST_TREES * leaves * depth * FOREST_SHAP_PER_LEAF
    else:
        fit = GENERIC_FIT_PER_CELL * n_train * n_inputs * shape.n_outputs
        predict = GENERIC_PREDICT_PER_CELL * n_inputs * shape.n_outputs
        tree_shap = None
    if wrapped:
        predict += NNETSAUCE_PER_HIDDEN_CELL * shape.n_features * hidden
        fit += NNETSAUCE_PER_HIDDEN_CELL * n_train * shape.n_features * hidden
    return _ModelCosts(
        fit=fit,
        predict_per_row=predict,
        call_seconds=NNETSAUCE_CALL_SECONDS if wrapped else 1e-3,
        # A wrapped model is explained by nnetsauce-tree or the model-agnostic sampler: bounded by the latter.
        shap_per_row=None if wrapped else tree_shap,
    )


def _forest_fit(n_train: int, n_inputs: int) -> float:
    n_train = max(n_train, 2)
    per_tree = FOREST_FIT_PER_TREE + n_train * math.log2(n_train) * math.sqrt(n_inputs) * FOREST_FIT_PER_UNIT
    return FOREST_TREES * per_tree


def shape_of(dataset: Dataset) -> DataShape:
    """The shape of a loaded dataset."""
    n_classes = len(dataset.class_labels) if dataset.class_labels is not None else None
    return DataShape(
        n_train=len(dataset.y_train),
        n_test=len(dataset.y_test),
        n_features=len(dataset.feature_names),
        n_classes=n_classes,
        n_categorical=len(dataset.categories),
    )
