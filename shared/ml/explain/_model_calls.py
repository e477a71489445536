"""Calling a model on many synthetic rows: few large calls, bounded memory, counted evaluations.

Some models cost a fixed ~13 ms per predict call (nnetsauce), so callers build one big batch and this
module splits it only as far as memory requires.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

PredictFn = Callable[[np.ndarray], np.ndarray]

#: Upper bound on the floats of one synthetic input batch (64 MB of float64).
MAX_BATCH_FLOATS = 8_000_000


def as_outputs(predictions: np.ndarray, n_rows: int) -> np.ndarray:
    """Model outputs as a (n_rows, k) float array, whether the model returned (m,) or (m, k)."""
    outputs = np.asarray(predictions, dtype=float)
    if outputs.ndim == 1:
        outputs = outputs[:, None]
    if outputs.ndim != 2 or outputs.shape[0] != n_rows:
        raise ValueError(f"predict_fn returned shape {np.shape(predictions)} for {n_rows} rows")
    return outputs


def max_batch_rows(n_features: int) -> int:
    """How many synthetic rows fit in one model call under MAX_BATCH_FLOATS."""
    return max(1, MAX_BATCH_FLOATS // max(n_features, 1))


class CountingModel:
    """Wraps predict_fn: splits big batches, normalises outputs to 2-D and counts evaluated rows."""

    def __init__(self, predict_fn: PredictFn) -> None:
        self._predict_fn = predict_fn
        self.n_evals = 0

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        step = max_batch_rows(rows.shape[1])
        pieces = []
        for start in range(0, rows.shape[0], step):
            batch = rows[start : start + step]
            pieces.append(as_outputs(self._predict_fn(batch), batch.shape[0]))
            self.n_evals += batch.shape[0]
        return np.concatenate(pieces, axis=0)
