"""Exact interventional TreeSHAP for every (row, reference row) pair, vectorised with NumPy.

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

import numpy as np


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

    def leaf_of(self, left_mask: np.ndarray, rows: np.ndarray, tree: np.ndarray) -> np.ndarray:
        """Leaf reached in tree[i] by row rows[i] of the split decisions left_mask."""
        node = self.roots[tree]
        for _ in range(self.max_depth):
            internal = self.left[node] >= 0
            step = np.where(left_mask[rows, node], self.left[node], self.right[node])
            node = np.where(internal, step, node)
        return node


def flatten_forest(trees: list, weights: np.ndarray, *, normalise: bool) -> FlatForest:
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
    return forest.value[leaves].sum(axis=1)


def cross_shap(forest: FlatForest, left_x: np.ndarray, left_z: np.ndarray, n_features: int) -> np.ndarray:
    """(n_x, n_z, n_features, n_outputs) exact single-reference interventional SHAP of every pair.

    For every (x, z) the attributions sum to f(x) - f(z) exactly (efficiency of each tree's game).
    A tree's credit depends on a row only through its split decisions in that tree, and rows share
    few distinct decision vectors per tree: each tree's game is solved once per distinct (x, z)
    decision-vector pair (a "unit") and gathered per pair.
    """
    codes_x, reps_x = _tree_codes(forest, left_x)
    codes_z, reps_z = _tree_codes(forest, left_z)
    n_x = np.array([r.size for r in reps_x])
    n_z = np.array([r.size for r in reps_z])
    unit_offsets = np.concatenate([[0], np.cumsum(n_x * n_z)[:-1]])
    unit_tree = np.repeat(np.arange(n_x.size), n_x * n_z)
    unit_x = np.concatenate([r[np.arange(a * b) // b] for r, a, b in zip(reps_x, n_x, n_z, strict=True)])
    unit_z = np.concatenate([r[np.arange(a * b) % b] for r, a, b in zip(reps_z, n_x, n_z, strict=True)])
    credits = _unit_shap(forest, left_x, left_z, unit_tree, unit_x, unit_z)  # (U, F, k)
    n_out = credits.shape[2]
    result = np.zeros((n_out, n_features, codes_x.shape[0], codes_z.shape[0]))
    for t in range(n_x.size):
        table = credits[unit_offsets[t] : unit_offsets[t] + n_x[t] * n_z[t]]  # (Ux * Uz, F, k)
        units = codes_x[:, t][:, None] * n_z[t] + codes_z[:, t][None, :]  # (n_x, n_z)
        for slot, feature in enumerate(forest.tree_features[t]):
            if feature < 0:
                break
            for out in range(n_out):
                result[out, feature] += table[:, slot, out][units]
    return np.ascontiguousarray(result.transpose(2, 3, 1, 0))


def _tree_codes(forest: FlatForest, left_mask: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per tree, each row's index among the distinct split-decision vectors, and one row per vector."""
    n_trees = forest.roots.shape[0]
    codes = np.empty((left_mask.shape[0], n_trees), dtype=np.int64)
    reps = []
    for t in range(n_trees):
        decisions = left_mask[:, forest.tree_internal[t]]
        _, first, inverse = np.unique(decisions, axis=0, return_index=True, return_inverse=True)
        codes[:, t] = inverse.ravel()
        reps.append(first)
    return codes, reps


def _unit_shap(
    forest: FlatForest,
    left_x: np.ndarray,
    left_z: np.ndarray,
    unit_tree: np.ndarray,
    unit_x: np.ndarray,
    unit_z: np.ndarray,
) -> np.ndarray:
    """(U, F, k) each unit's Shapley credits over its tree's local feature slots."""
    n_units, n_out = unit_tree.shape[0], forest.value.shape[1]
    n_slots = forest.tree_features.shape[1]
    flat = np.zeros((n_units * n_slots, n_out))
    lx = forest.leaf_of(left_x, unit_x, unit_tree)
    lz = forest.leaf_of(left_z, unit_z, unit_tree)
    unit = np.nonzero(lx != lz)[0]
    lx, lz = lx[unit], lz[unit]
    shared = np.cumprod(forest.ancestors[lx] == forest.ancestors[lz], axis=1).sum(axis=1)
    node = forest.ancestors[lx, shared - 1]  # the node where x and z part ways
    width = max(forest.max_depth, 1)
    weights_a, weights_b = _shapley_weights(width)
    set_a = np.full((unit.shape[0], width), -1, dtype=np.int64)
    set_b = set_a.copy()
    size_a = np.zeros(unit.shape[0], dtype=np.int64)
    size_b = size_a.copy()
    while unit.size:
        at_leaf = forest.left[node] < 0
        if at_leaf.any():
            _credit_leaves(
                flat,
                forest.value[node[at_leaf]],
                unit[at_leaf],
                set_a[at_leaf],
                set_b[at_leaf],
                size_a[at_leaf],
                size_b[at_leaf],
                weights_a,
                weights_b,
                n_slots,
            )
            keep = ~at_leaf
            unit, node = unit[keep], node[keep]
            set_a, set_b, size_a, size_b = set_a[keep], set_b[keep], size_a[keep], size_b[keep]
        if not unit.size:
            break
        slot = forest.local_slot[node]
        x_left = left_x[unit_x[unit], node]
        z_left = left_z[unit_z[unit], node]
        in_a = (set_a == slot[:, None]).any(axis=1)
        in_b = (set_b == slot[:, None]).any(axis=1)
        split = (x_left != z_left) & ~in_a & ~in_b
        go_left = np.where(in_b, z_left, x_left)
        child = np.where(go_left, forest.left[node], forest.right[node])
        if split.any():
            s = np.nonzero(split)[0]
            # the copy takes this feature from z; the original takes it from x
            z_node = np.where(z_left[s], forest.left[node[s]], forest.right[node[s]])
            z_set_b = set_b[s].copy()
            z_set_b[np.arange(s.size), size_b[s]] = slot[s]
            z_set_a, z_size_a, z_size_b = set_a[s], size_a[s], size_b[s] + 1
            set_a[s, size_a[s]] = slot[s]
            size_a[s] += 1
            unit = np.concatenate([unit, unit[s]])
            node = np.concatenate([child, z_node])
            set_a = np.concatenate([set_a, z_set_a])
            set_b = np.concatenate([set_b, z_set_b])
            size_a = np.concatenate([size_a, z_size_a])
            size_b = np.concatenate([size_b, z_size_b])
        else:
            node = child
    return flat.reshape(n_units, n_slots, n_out)


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


def _credit_leaves(
    flat: np.ndarray,
    value: np.ndarray,
    pair: np.ndarray,
    set_a: np.ndarray,
    set_b: np.ndarray,
    size_a: np.ndarray,
    size_b: np.ndarray,
    weights_a: np.ndarray,
    weights_b: np.ndarray,
    n_features: int,
) -> None:
    """Add each reached leaf's Shapley credit to its A and B features (in place, by bincount)."""
    credit_a = weights_a[size_a, size_b]
    credit_b = weights_b[size_a, size_b]
    index, weight = [], []
    for members, credit in ((set_a, credit_a), (set_b, credit_b)):
        rows, slots = np.nonzero(members >= 0)
        index.append(pair[rows] * n_features + members[rows, slots])
        weight.append(credit[rows])
    index_all = np.concatenate(index)
    weight_all = np.concatenate(weight)
    rows_all = np.concatenate([np.nonzero(set_a >= 0)[0], np.nonzero(set_b >= 0)[0]])
    for out in range(value.shape[1]):
        flat[:, out] += np.bincount(
            index_all, weights=weight_all * value[rows_all, out], minlength=flat.shape[0]
        )
