"""Compiled loops of the per-pair TreeSHAP: each unit's game by leaf enumeration, then the gather per pair.

For one reference z, a leaf is reached by the hybrid point (S from x, the rest from z) iff every feature
on its path is satisfied by x (then it must be in S), by z (then outside S) or by both (free); it is
unreachable when some feature is satisfied by neither. With A the features only x satisfies and B those
only z satisfies, the leaf's Shapley credit is +(|A|-1)!|B|!/(|A|+|B|)! x value to each member of A and
-|A|!(|B|-1)!/(|A|+|B|)! x value to each member of B. NumPy cannot express these short, data-dependent
loops without huge temporaries; numba compiles them once per machine (cached on disk).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def unit_tables(
    tree_leaves: np.ndarray,  # (T + 1,) offsets into the leaf arrays
    leaf_value: np.ndarray,  # (L, k)
    leaf_slots_start: np.ndarray,  # (L + 1,) offsets into leaf_slots
    leaf_slots: np.ndarray,  # tree-local feature slots distinct on each leaf's path
    path_start: np.ndarray,  # (L + 1,) offsets into the path arrays
    path_node: np.ndarray,  # global node index of each split on the path
    path_left: np.ndarray,  # True when the path goes left at that split
    path_pos: np.ndarray,  # position of the split's slot in the leaf's distinct slots
    left_x: np.ndarray,  # (n_x, N) split decisions of the explained rows
    left_z: np.ndarray,  # (n_z, N) split decisions of the reference rows
    reps_x: np.ndarray,  # representative rows of each tree's distinct x decision vectors, concatenated
    reps_x_start: np.ndarray,  # (T + 1,)
    reps_z: np.ndarray,
    reps_z_start: np.ndarray,
    n_slots: int,
    weights_a: np.ndarray,
    weights_b: np.ndarray,
    table_start: np.ndarray,  # (T,) offset of each tree's (Ux, Uz, n_slots, k) block in the result
    table_size: int,
) -> np.ndarray:
    """Flat per-tree tables of each (distinct x, distinct z) unit's credits over the tree's slots."""
    k = leaf_value.shape[1]
    table = np.zeros(table_size)
    max_slots = 1
    for leaf in range(leaf_slots_start.shape[0] - 1):
        max_slots = max(max_slots, leaf_slots_start[leaf + 1] - leaf_slots_start[leaf])
    x_ok = np.empty(max_slots, dtype=np.bool_)
    z_ok = np.empty(max_slots, dtype=np.bool_)
    for t in range(tree_leaves.shape[0] - 1):
        n_ux = reps_x_start[t + 1] - reps_x_start[t]
        n_uz = reps_z_start[t + 1] - reps_z_start[t]
        for i in range(n_ux):
            xr = reps_x[reps_x_start[t] + i]
            for j in range(n_uz):
                zr = reps_z[reps_z_start[t] + j]
                base = table_start[t] + (i * n_uz + j) * n_slots * k
                for leaf in range(tree_leaves[t], tree_leaves[t + 1]):
                    s0, s1 = leaf_slots_start[leaf], leaf_slots_start[leaf + 1]
                    width = s1 - s0
                    for s in range(width):
                        x_ok[s] = True
                        z_ok[s] = True
                    for e in range(path_start[leaf], path_start[leaf + 1]):
                        node, pos = path_node[e], path_pos[e]
                        if left_x[xr, node] != path_left[e]:
                            x_ok[pos] = False
                        if left_z[zr, node] != path_left[e]:
                            z_ok[pos] = False
                    a = 0
                    b = 0
                    reachable = True
                    for s in range(width):
                        if x_ok[s]:
                            if not z_ok[s]:
                                a += 1
                        elif z_ok[s]:
                            b += 1
                        else:
                            reachable = False
                            break
                    if not reachable or a + b == 0:
                        continue
                    credit_a = weights_a[a, b]
                    credit_b = weights_b[a, b]
                    for s in range(width):
                        if x_ok[s] == z_ok[s]:
                            continue
                        credit = credit_a if x_ok[s] else credit_b
                        at = base + leaf_slots[s0 + s] * k
                        for o in range(k):
                            table[at + o] += credit * leaf_value[leaf, o]
    return table


@njit(cache=True, nogil=True)
def gather_pairs(
    table: np.ndarray,
    table_start: np.ndarray,
    codes_x: np.ndarray,  # (n_x, T) each row's distinct-vector index per tree
    codes_z_by_tree: np.ndarray,  # (T, n_z)
    n_uz: np.ndarray,  # (T,) distinct z vectors per tree
    tree_features: np.ndarray,  # (T, n_slots) feature of each slot, -1 padding
    n_features: int,
    k: int,
) -> np.ndarray:
    """(n_x, n_z, n_features, k) per-pair attributions: each tree's unit credits, summed over trees.

    Loop order x, tree, z: one x row's slice of a tree's table and of the result stay in cache.
    """
    n_x, n_trees = codes_x.shape
    n_z = codes_z_by_tree.shape[1]
    n_slots = tree_features.shape[1]
    result = np.zeros((n_x, n_z, n_features, k))
    for x in range(n_x):
        for t in range(n_trees):
            used = 0
            while used < n_slots and tree_features[t, used] >= 0:
                used += 1
            row = table_start[t] + codes_x[x, t] * n_uz[t] * n_slots * k
            for z in range(n_z):
                base = row + codes_z_by_tree[t, z] * n_slots * k
                for s in range(used):
                    feature = tree_features[t, s]
                    for o in range(k):
                        result[x, z, feature, o] += table[base + s * k + o]
    return result


def warm_up() -> None:
    """Compile (or load from numba's disk cache) both kernels on a one-split tree, before any job needs them.

    A worker calls this at start, so the first SHAP job does not pay the compilation. The calibrators'
    path kernel (_calibrated_paths) is warmed here too.
    """
    from shared.ml.explain import _calibrated_paths

    _calibrated_paths.warm_up()
    i64 = np.int64
    table_start = np.zeros(1, dtype=i64)
    table = unit_tables(
        np.array([0, 2], dtype=i64),  # one tree, two leaves
        np.array([[0.0], [1.0]]),
        np.array([0, 1, 2], dtype=i64),
        np.zeros(2, dtype=i64),
        np.array([0, 1, 2], dtype=i64),
        np.zeros(2, dtype=i64),
        np.array([True, False]),
        np.zeros(2, dtype=i64),
        np.array([[True, False, False]]),
        np.array([[False, False, False]]),
        np.zeros(1, dtype=i64),
        np.array([0, 1], dtype=i64),
        np.zeros(1, dtype=i64),
        np.array([0, 1], dtype=i64),
        1,
        np.array([[0.0, 0.0], [1.0, 0.0]]),
        np.array([[0.0, -1.0], [0.0, 0.0]]),
        table_start,
        1,
    )
    gather_pairs(
        table,
        table_start,
        np.zeros((1, 1), dtype=i64),
        np.zeros((1, 1), dtype=i64),
        np.ones(1, dtype=i64),
        np.zeros((1, 1), dtype=i64),
        1,
        1,
    )
