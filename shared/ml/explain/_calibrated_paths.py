"""Shapley values of sigmoid calibrators over an additive game, by cheap antithetic permutation paths.

A calibrated forest's probability is mean_f sigmoid(-(a_f F_f + b_f)) over the calibration folds. For
one (row x, background row z) pair, the chain rule gives each input's share of every fold's forest change
F_f(x) - F_f(z), additively. The rescale rule then multiplies those shares by the sigmoid's secant, which
ignores its curvature: an input whose effect comes when the logit already sits on a flat part of the
sigmoid gets too much. Here the additive forest game is passed through the sigmoids and its Shapley values
are sampled exactly as permutation sampling would, except that a coalition's value is a cumulative sum
and an expit instead of a model call: microseconds per path. Every path telescopes to the pair's change
in probability, so each pair's values still sum to f(x) - f(z).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def sigmoid_path_values(
    shares: np.ndarray,  # (n_rows * n_ref, p, n_folds) each input's share of each fold's forest change
    forest_at_z: np.ndarray,  # (n_rows * n_ref, n_folds) each fold's forest output at the background row
    slope: np.ndarray,  # (n_folds,) calibrators' a_
    intercept: np.ndarray,  # (n_folds,) calibrators' b_
    row_seeds: np.ndarray,  # (n_rows,) one seed per explained row; pairs are row-major
    n_paths: int,
) -> np.ndarray:
    """(P, p) mean over n_paths antithetic permutation pairs of the calibrated additive game's contributions.

    Each permutation (Fisher-Yates from numba's generator, reseeded per explained row so a row's values do
    not depend on the other rows) is walked forwards and backwards; fold probabilities are averaged.
    """
    n_pairs, n_features, n_folds = shares.shape
    n_ref = n_pairs // row_seeds.shape[0]
    out = np.zeros((n_pairs, n_features))
    order = np.arange(n_features)
    start = np.empty(n_folds)
    forest = np.empty(n_folds)
    before = np.empty(n_folds)
    for pair in range(n_pairs):
        if pair % n_ref == 0:
            np.random.seed(row_seeds[pair // n_ref])
            order[:] = np.arange(n_features)
        for f in range(n_folds):
            start[f] = 1.0 / (1.0 + np.exp(slope[f] * forest_at_z[pair, f] + intercept[f]))
        for _ in range(n_paths):
            for i in range(n_features - 1, 0, -1):
                j = int(np.random.random() * (i + 1))
                order[i], order[j] = order[j], order[i]
            for direction in range(2):
                for f in range(n_folds):
                    forest[f] = forest_at_z[pair, f]
                    before[f] = start[f]
                for step in range(n_features):
                    j = order[step] if direction == 0 else order[n_features - 1 - step]
                    gain = 0.0
                    for f in range(n_folds):
                        forest[f] += shares[pair, j, f]
                        after = 1.0 / (1.0 + np.exp(slope[f] * forest[f] + intercept[f]))
                        gain += after - before[f]
                        before[f] = after
                    out[pair, j] += gain
    mean: np.ndarray = out / (2.0 * n_paths * n_folds)
    return mean


def warm_up() -> None:
    """Compile (or load from numba's disk cache) the kernel with the argument types a job passes."""
    sigmoid_path_values(
        np.zeros((1, 2, 2)), np.zeros((1, 2)), np.ones(2), np.zeros(2), np.zeros(1, np.int64), 1
    )
