"""Coalition bookkeeping for Shapley values: which features are "on", and how to weigh the results.

Kept apart from the estimators so the combinatorics can be read (and tested) on its own.
"""

from __future__ import annotations

from math import factorial

import numpy as np


def all_coalitions(n_features: int) -> np.ndarray:
    """Every subset of the features as a (2**p, p) boolean mask; row c holds the bits of c."""
    codes = np.arange(2**n_features, dtype=np.int64)
    return ((codes[:, None] >> np.arange(n_features)) & 1).astype(bool)


def shapley_weight_matrix(coalitions: np.ndarray) -> np.ndarray:
    """W such that values = v @ W, for v the game's value on each coalition of `all_coalitions`.

    phi_j = sum_S |S|!(p-|S|-1)!/p! (v(S+j) - v(S)): each coalition T containing j enters with
    +w(|T|-1), each one without j with -w(|T|). A matrix product then explains many rows at once.
    """
    n_features = coalitions.shape[1]
    weight_by_size = np.array(
        [factorial(s) * factorial(n_features - s - 1) / factorial(n_features) for s in range(n_features)]
        + [0.0]
    )
    sizes = coalitions.sum(axis=1)
    plus = weight_by_size[np.maximum(sizes - 1, 0)][:, None]
    minus = weight_by_size[sizes][:, None]
    weights: np.ndarray = np.where(coalitions, plus, -minus)
    return weights


def random_permutations(rng: np.random.Generator, n_permutations: int, n_features: int) -> np.ndarray:
    """(n, p) independent uniform permutations of the feature indices, from a local generator."""
    return np.argsort(rng.random((n_permutations, n_features)), axis=1)


def antithetic_path_masks(permutations: np.ndarray) -> np.ndarray:
    """Inner coalitions walked by each permutation and by its reverse: (u, 2(p-1), p) boolean.

    Forward path: S_t = first t features of the permutation, t = 1..p-1. The reverse permutation walks
    the complements of the same sets, so one pair needs 2(p-1) evaluations besides f(b) and f(x).
    """
    n_features = permutations.shape[1]
    positions = np.argsort(permutations, axis=1)  # positions[u, j] = place of feature j in permutation u
    steps = np.arange(1, n_features)
    forward = positions[:, None, :] < steps[None, :, None]  # (u, p-1, p)
    return np.concatenate([forward, ~forward], axis=1)


def antithetic_path_values(
    permutations: np.ndarray, inner: np.ndarray, at_background: np.ndarray, at_row: np.ndarray
) -> np.ndarray:
    """Per-feature marginal contributions averaged over a permutation and its reverse: (u, p, k).

    inner: (u, 2(p-1), k) game values on `antithetic_path_masks`; at_background: (u, k) = v(empty);
    at_row: (k,) or (u, k) = v(all). Each path telescopes to v(all) - v(empty), so their mean does too.
    """
    n_units, n_features = permutations.shape
    n_outputs = inner.shape[-1]
    at_row = np.broadcast_to(at_row, (n_units, n_outputs))
    forward = np.concatenate([at_background[:, None], inner[:, : n_features - 1], at_row[:, None]], axis=1)
    complements = np.concatenate(
        [at_row[:, None], inner[:, n_features - 1 :], at_background[:, None]], axis=1
    )
    # Feature at position t (0-based) gains F[t+1]-F[t] going forward and G[t]-G[t+1] going backward.
    by_position = 0.5 * ((forward[:, 1:] - forward[:, :-1]) + (complements[:, :-1] - complements[:, 1:]))
    positions = np.argsort(permutations, axis=1)
    return np.take_along_axis(by_position, positions[:, :, None], axis=1)
