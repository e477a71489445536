"""Permutation importance with scikit-learn's numbers, scored in a few large predict calls.

scikit-learn calls `predict` once per (feature, repeat): for a nnetsauce model that is ~13 ms of fixed
cost each, 300 times. We draw exactly the same permutations (one seed from `random_state`, reused for
every column, shuffles accumulated over repeats) but stack the permuted copies and predict them in
chunks of a few million cells, so the result equals sklearn's to rounding while costing a few calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from shared.ml.errors import ParameterError
from shared.ml.spec import Task

DEFAULT_MAX_BATCH_CELLS = 4_000_000


def permutation_importance(
    model: Any,
    X: np.ndarray,
    y: np.ndarray,
    *,
    task: Task,
    n_repeats: int = 10,
    random_state: int,
    features: tuple[int, int] | None = None,
    max_batch_cells: int = DEFAULT_MAX_BATCH_CELLS,
) -> dict[str, Any]:
    """Decrease of accuracy (classification) or R² (regression) when each feature of the span is shuffled.

    `features=(start, stop)` restricts the work to columns [start, stop) so callers can fan out; the
    numbers for a column do not depend on the span it was computed in.
    """
    X = np.asarray(X)
    y = np.asarray(y).ravel()
    n_rows, n_features = X.shape
    start, stop = _check_span(features, n_features)
    if n_repeats < 1:
        raise ParameterError("bad_n_repeats", f"n_repeats must be at least 1, got {n_repeats}.")
    if y.shape[0] != n_rows:
        raise ParameterError("bad_target", f"y has {y.shape[0]} rows but X has {n_rows}.")

    row_orders = sklearn_row_orders(random_state, n_rows, n_repeats)
    span = np.arange(start, stop)
    # Block 0 is the unpermuted baseline; block 1 + f * n_repeats + r shuffles column span[f] with order r.
    block_feature = np.concatenate([[-1], np.repeat(span, n_repeats)])
    block_repeat = np.concatenate([[-1], np.tile(np.arange(n_repeats), len(span))])

    scores = np.empty(len(block_feature))
    n_calls = 0
    for first, last, predictions, calls in _predict_blocks(
        model, X, row_orders, block_feature, block_repeat, max_batch_cells
    ):
        scores[first:last] = _block_scores(task, y, predictions.reshape(last - first, n_rows))
        n_calls += calls

    baseline = scores[0]
    importances = baseline - scores[1:].reshape(len(span), n_repeats)
    return {
        "importances_mean": importances.mean(axis=1),
        "importances_std": importances.std(axis=1),
        "importances": importances,
        "scoring": "accuracy" if task == "classification" else "r2",
        "n_repeats": n_repeats,
        "n_model_evals": int(len(block_feature) * n_rows),
        "n_predict_calls": n_calls,
        "baseline_score": float(baseline),
    }


def sklearn_row_orders(random_state: int, n_rows: int, n_repeats: int) -> np.ndarray:
    """Row order of a shuffled column after each repeat, drawn as sklearn draws it (n_repeats x n_rows).

    sklearn takes one seed from RandomState(random_state), gives every column a fresh RandomState(seed)
    and shuffles an index array in place each repeat, applying it to the already shuffled column.
    """
    seed = np.random.RandomState(random_state).randint(np.iinfo(np.int32).max + 1)
    column_rng = np.random.RandomState(seed)
    shuffling_idx = np.arange(n_rows)
    order = np.arange(n_rows)
    orders = np.empty((n_repeats, n_rows), dtype=np.intp)
    for repeat in range(n_repeats):
        column_rng.shuffle(shuffling_idx)
        order = order[shuffling_idx]
        orders[repeat] = order
    return orders


def _check_span(features: tuple[int, int] | None, n_features: int) -> tuple[int, int]:
    if features is None:
        return 0, n_features
    start, stop = int(features[0]), int(features[1])
    if not 0 <= start < stop <= n_features:
        raise ParameterError(
            "bad_feature_span", f"feature span {features} is not within [0, {n_features}) or is empty."
        )
    return start, stop


def _predict_blocks(
    model: Any,
    X: np.ndarray,
    row_orders: np.ndarray,
    block_feature: np.ndarray,
    block_repeat: np.ndarray,
    max_batch_cells: int,
) -> Iterator[tuple[int, int, np.ndarray, int]]:
    """Yield (first_block, last_block, stacked predictions, predict calls) for groups of whole blocks."""
    n_rows, n_features = X.shape
    rows_per_call = max(1, max_batch_cells // max(1, n_features))
    blocks_per_group = max(1, rows_per_call // n_rows)
    n_blocks = len(block_feature)
    for first in range(0, n_blocks, blocks_per_group):
        last = min(n_blocks, first + blocks_per_group)
        parts = []
        for v_start in range(first * n_rows, last * n_rows, rows_per_call):
            v_stop = min(last * n_rows, v_start + rows_per_call)
            rows = _stacked_rows(X, row_orders, block_feature, block_repeat, v_start, v_stop)
            parts.append(np.asarray(model.predict(rows)).reshape(v_stop - v_start))
        yield first, last, np.concatenate(parts), len(parts)


def _stacked_rows(
    X: np.ndarray,
    row_orders: np.ndarray,
    block_feature: np.ndarray,
    block_repeat: np.ndarray,
    v_start: int,
    v_stop: int,
) -> np.ndarray:
    """Rows [v_start, v_stop) of the virtual stack of all blocks, built without materialising the stack."""
    n_rows = X.shape[0]
    virtual = np.arange(v_start, v_stop)
    block, row = np.divmod(virtual, n_rows)
    rows = X[row]
    permuted = np.flatnonzero(block_feature[block] >= 0)
    column = block_feature[block[permuted]]
    source = row_orders[block_repeat[block[permuted]], row[permuted]]
    rows[permuted, column] = X[source, column]
    return rows


def _block_scores(task: Task, y: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Accuracy or R² of each row of `predictions` (blocks x n_rows), as sklearn's scorers compute them."""
    if task == "classification":
        accuracy: np.ndarray = (predictions == y[None, :]).mean(axis=1)
        return accuracy
    residual = ((y[None, :] - predictions) ** 2).sum(axis=1)
    total = ((y - y.mean()) ** 2).sum()
    if total == 0:
        return np.where(residual == 0, 1.0, 0.0)
    explained: np.ndarray = 1.0 - residual / total
    return explained
