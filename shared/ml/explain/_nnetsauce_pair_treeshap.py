"""Exact interventional TreeSHAP for every (row, reference row) pair (NumPy tables, compiled games).

shap's TreeExplainer averages over the background inside its C code; the chain rule back through
nnetsauce's feature map needs each pair's attributions, because its multipliers depend on the pair.
For one reference z, a tree is a game over the features where x and z go different ways: walk the
"hybrid" paths (follow x or z at each split, consistently per feature) and credit each reached leaf
to the features taken from x (set A, positive) and from z (set B, negative) with Shapley weights.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from math import factorial
from typing import Any

import numpy as np

from shared.ml.explain._nnetsauce_pair_kernel import gather_pairs, unit_tables


@dataclass(frozen=True)
class LeafPaths:
    """Each leaf's root-to-leaf splits, flattened for the compiled unit games (offsets per leaf/tree)."""

    leaves: np.ndarray  # (L,) global node index of each leaf, tree by tree
    tree_leaves: np.ndarray  # (T + 1,) offsets into leaves
    path_start: np.ndarray  # (L + 1,) offsets into the path arrays
    path_node: np.ndarray  # the splits on each leaf's path
    path_left: np.ndarray  # True where the path goes left
    path_pos: np.ndarray  # index of the split's feature among the leaf's distinct slots
    leaf_slots_start: np.ndarray  # (L + 1,) offsets into leaf_slots
    leaf_slots: np.ndarray  # each leaf's distinct tree-local feature slots, in first-seen order


@dataclass(frozen=True)
class FlatForest:
    """All trees of one ensemble in one node array; leaf values already carry the ensemble weight."""

    left: np.ndarray  # (N,) global child index, -1 at leaves
    right: np.ndarray
    feature: np.ndarray  # (N,) feature index, 0 at leaves (never read there)
    threshold: np.ndarray  # (N,) float64
    value: np.ndarray  # (N, n_outputs), zero at internal nodes
    roots: np.ndarray  # (n_trees,)
    ancestors: np.ndarray  # (N, max_depth + 1) node at each depth on the path to the node, -1 below
    max_depth: int
    tree_internal: list[np.ndarray]  # per tree, its internal nodes
    tree_features: np.ndarray  # (n_trees, F) each tree's distinct split features, padded with -1
    local_slot: np.ndarray  # (N,) position of the node's feature in its tree's row of tree_features
    paths: LeafPaths


def flatten_forest(trees: list[Any], weights: np.ndarray, *, normalise: bool) -> FlatForest:
    """Concatenate sklearn `Tree`s; `normalise` turns class counts into fractions as predict_proba does."""
    lefts, rights, feats, thrs, vals, roots = [], [], [], [], [], []
    offset = 0
    for tree, weight in zip(trees, weights, strict=True):
        left = tree.children_left.astype(np.int64)
        right = tree.children_right.astype(np.int64)
        is_leaf = left < 0
        value = tree.value[:, 0, :] if tree.value.shape[1] == 1 else tree.value[:, :, 0]
        value = np.asarray(value, dtype=np.float64)
        if normalise:
            totals = value.sum(axis=1, keepdims=True)
            value = value / np.where(totals == 0, 1.0, totals)
        value = np.where(is_leaf[:, None], value * weight, 0.0)
        lefts.append(np.where(is_leaf, -1, left + offset))
        rights.append(np.where(is_leaf, -1, right + offset))
        feats.append(np.where(is_leaf, 0, tree.feature).astype(np.int64))
        thrs.append(tree.threshold.astype(np.float64))
        vals.append(value)
        roots.append(offset)
        offset += left.shape[0]
    left = np.concatenate(lefts)
    right = np.concatenate(rights)
    feature = np.concatenate(feats)
    ancestors, max_depth = _ancestor_table(left, right, np.asarray(roots))
    bounds = [*roots, offset]
    tree_internal = [np.arange(a, b)[left[a:b] >= 0] for a, b in itertools.pairwise(bounds)]
    distinct = [np.unique(feature[nodes]) for nodes in tree_internal]
    tree_features = np.full((len(distinct), max(1, max(d.size for d in distinct))), -1, dtype=np.int64)
    local_slot = np.zeros(offset, dtype=np.int64)
    for t, (nodes, feats_t) in enumerate(zip(tree_internal, distinct, strict=True)):
        tree_features[t, : feats_t.size] = feats_t
        local_slot[nodes] = np.searchsorted(feats_t, feature[nodes])
    return FlatForest(
        paths=_leaf_paths(left, ancestors, local_slot, np.asarray(roots, dtype=np.int64)),
        left=left,
        right=right,
        feature=feature,
        threshold=np.concatenate(thrs),
        value=np.concatenate(vals),
        roots=np.asarray(roots, dtype=np.int64),
        ancestors=ancestors,
        max_depth=max_depth,
        tree_internal=tree_internal,
        tree_features=tree_features,
        local_slot=local_slot,
    )


def _ancestor_table(left: np.ndarray, right: np.ndarray, roots: np.ndarray) -> tuple[np.ndarray, int]:
    """Each node's path from its root, so two leaves' divergence node is a vectorised prefix compare."""
    n_nodes = left.shape[0]
    depth = np.full(n_nodes, -1, dtype=np.int64)
    parent = np.full(n_nodes, -1, dtype=np.int64)
    depth[roots] = 0
    frontier = roots
    while frontier.size:
        internal = frontier[left[frontier] >= 0]
        children = np.concatenate([left[internal], right[internal]])
        parent[children] = np.concatenate([internal, internal])
        depth[children] = depth[np.concatenate([internal, internal])] + 1
        frontier = children
    max_depth = int(depth.max())
    ancestors = np.full((n_nodes, max_depth + 1), -1, dtype=np.int64)
    ancestors[np.arange(n_nodes), depth] = np.arange(n_nodes)
    for d in range(max_depth, 0, -1):
        at_d = depth >= d
        nodes = ancestors[at_d, d]
        ancestors[at_d, d - 1] = parent[nodes]
    return ancestors, max_depth


def _leaf_paths(
    left: np.ndarray, ancestors: np.ndarray, local_slot: np.ndarray, roots: np.ndarray
) -> LeafPaths:
    leaves = np.nonzero(left < 0)[0]
    above, below = ancestors[leaves, :-1], ancestors[leaves, 1:]
    on_path = below >= 0
    path_node = above[on_path]
    path_left = left[path_node] == below[on_path]
    path_start = np.concatenate([[0], np.cumsum(on_path.sum(axis=1))]).astype(np.int64)
    path_slot = local_slot[path_node]
    entry_leaf = np.repeat(np.arange(leaves.shape[0]), np.diff(path_start))
    # each split's first split on the same feature along its path (paths are short: compare by shifts)
    first = np.arange(path_slot.shape[0])
    for shift in range(1, int(np.diff(path_start).max(initial=0))):
        same = (path_slot[shift:] == path_slot[:-shift]) & (entry_leaf[shift:] == entry_leaf[:-shift])
        first[shift:][same] = np.arange(path_slot.shape[0] - shift)[same]
    distinct = first == np.arange(path_slot.shape[0])
    rank = np.cumsum(distinct) - 1  # distinct slots so far, over all leaves
    leaf_slots_start = np.concatenate(
        [[0], np.cumsum(np.bincount(entry_leaf[distinct], minlength=leaves.shape[0]))]
    )
    path_pos = rank[first] - leaf_slots_start[entry_leaf]
    leaf_slots = path_slot[distinct]
    return LeafPaths(
        leaves=leaves,
        tree_leaves=np.append(np.searchsorted(leaves, roots), leaves.shape[0]).astype(np.int64),
        path_start=path_start,
        path_node=path_node.astype(np.int64),
        path_left=path_left,
        path_pos=path_pos.astype(np.int64),
        leaf_slots_start=leaf_slots_start.astype(np.int64),
        leaf_slots=leaf_slots.astype(np.int64),
    )


def goes_left(forest: FlatForest, Z: np.ndarray) -> np.ndarray:
    """(n_rows, N) split decisions, with sklearn's float32 cast of the inputs so paths match predict."""
    z32 = np.asarray(Z, dtype=np.float32).astype(np.float64)
    return z32[:, forest.feature] <= forest.threshold


def leaves_of(forest: FlatForest, left_mask: np.ndarray) -> np.ndarray:
    """(n_rows, n_trees) leaf reached by each row in each tree."""
    node = np.broadcast_to(forest.roots, (left_mask.shape[0], forest.roots.shape[0])).copy()
    rows = np.arange(left_mask.shape[0])[:, None]
    for _ in range(forest.max_depth):
        internal = forest.left[node] >= 0
        step = np.where(left_mask[rows, node], forest.left[node], forest.right[node])
        node = np.where(internal, step, node)
    return node


def forest_output(forest: FlatForest, leaves: np.ndarray) -> np.ndarray:
    """(n_rows, n_outputs) ensemble output from the leaves reached."""
    output: np.ndarray = forest.value[leaves].sum(axis=1)
    return output


def cross_shap(forest: FlatForest, left_x: np.ndarray, left_z: np.ndarray, n_features: int) -> np.ndarray:
    """(n_x, n_z, n_features, n_outputs) exact single-reference interventional SHAP of every pair.

    For every (x, z) the attributions sum to f(x) - f(z) exactly (efficiency of each tree's game).
    A tree's credit depends on a row only through its split decisions in that tree, and rows share
    few distinct decision vectors per tree: each tree's game is solved once per distinct (x, z)
    decision-vector pair (a "unit", by leaf enumeration) and gathered per pair (compiled loops).
    """
    codes_x, reps_x = _tree_codes(forest, left_x)
    codes_z, reps_z = _tree_codes(forest, left_z)
    n_ux = np.array([r.size for r in reps_x], dtype=np.int64)
    n_uz = np.array([r.size for r in reps_z], dtype=np.int64)
    n_slots, k = forest.tree_features.shape[1], forest.value.shape[1]
    sizes = n_ux * n_uz * n_slots * k
    table_start = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    weights_a, weights_b = _shapley_weights(max(forest.max_depth, 1))
    paths = forest.paths
    table = unit_tables(
        paths.tree_leaves,
        forest.value[paths.leaves],
        paths.leaf_slots_start,
        paths.leaf_slots,
        paths.path_start,
        paths.path_node,
        paths.path_left,
        paths.path_pos,
        np.ascontiguousarray(left_x),
        np.ascontiguousarray(left_z),
        np.concatenate(reps_x).astype(np.int64),
        np.concatenate([[0], np.cumsum(n_ux)]).astype(np.int64),
        np.concatenate(reps_z).astype(np.int64),
        np.concatenate([[0], np.cumsum(n_uz)]).astype(np.int64),
        n_slots,
        weights_a,
        weights_b,
        table_start,
        int(sizes.sum()),
    )
    return gather_pairs(
        table,
        table_start,
        codes_x,
        np.ascontiguousarray(codes_z.T),
        n_uz,
        forest.tree_features,
        n_features,
        k,
    )


def _tree_codes(forest: FlatForest, left_mask: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per tree, each row's index among the distinct split-decision vectors, and one row per vector."""
    n_trees = forest.roots.shape[0]
    codes = np.empty((left_mask.shape[0], n_trees), dtype=np.int64)
    reps = []
    for t in range(n_trees):
        if not forest.tree_internal[t].size:  # a single-leaf tree: every row alike
            codes[:, t] = 0
            reps.append(np.zeros(1, dtype=np.int64))
            continue
        packed = np.packbits(left_mask[:, forest.tree_internal[t]], axis=1)
        keys = np.ascontiguousarray(packed).view(np.dtype((np.void, packed.shape[1]))).ravel()
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        codes[:, t] = inverse.ravel()
        reps.append(first)
    return codes, reps


def _shapley_weights(width: int) -> tuple[np.ndarray, np.ndarray]:
    """Shapley value of a leaf reached iff A ⊆ S and B ∩ S = ∅: +|A|-1!|B|!/(|A|+|B|)! per A member."""
    sizes = np.arange(width + 1)
    weights_a = np.zeros((width + 1, width + 1))
    weights_b = np.zeros((width + 1, width + 1))
    for a in sizes:
        for b in sizes:
            if a + b == 0 or a + b > width:
                continue
            total = factorial(a + b)
            if a:
                weights_a[a, b] = factorial(a - 1) * factorial(b) / total
            if b:
                weights_b[a, b] = -factorial(a) * factorial(b - 1) / total
    return weights_a, weights_b
