"""Exact interventional TreeSHAP for every (row, reference row) pair, vectorised with NumPy.

shap's TreeExplainer averages over the background inside its C code; the chain rule back through
nnetsauce's feature map needs each pair's attributions, because its multipliers depend on the pair.
For one reference z, a tree is a game over the features where x and z go different ways: walk the
"hybrid" paths (follow x or z at each split, consistently per feature) and credit each reached leaf
to the features taken from x (set A, positive) and from z (set B, negative) with Shapley weights.
"""

from __future__ import annotations

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


def flatten_forest(trees: list, weights: np.ndarray, *, normalise: bool) -> FlatForest:
    """Concatenate sklearn `Tree` objects; `normalise` turns class counts into fractions as predict_proba does."""
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
    ancestors, max_depth = _ancestor_table(left, right, np.asarray(roots))
    return FlatForest(
        left=left,
        right=right,
        feature=np.concatenate(feats),
        threshold=np.concatenate(thrs),
        value=np.concatenate(vals),
        roots=np.asarray(roots, dtype=np.int64),
        ancestors=ancestors,
        max_depth=max_depth,
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


def pair_shap(
    forest: FlatForest,
    left_x: np.ndarray,
    leaves_x: np.ndarray,
    left_z: np.ndarray,
    leaves_z: np.ndarray,
    x_index: np.ndarray,
    z_index: np.ndarray,
    n_features: int,
) -> np.ndarray:
    """(n_pairs, n_features, n_outputs) exact single-reference interventional SHAP of each pair.

    Pair i explains row x_index[i] (of left_x) against reference z_index[i] (of left_z); for every
    pair the attributions sum to f(x) - f(z) exactly (efficiency of each tree's game).
    """
    n_pairs = x_index.shape[0]
    n_out = forest.value.shape[1]
    lx = leaves_x[x_index]  # (P, T)
    lz = leaves_z[z_index]
    pair_ids, tree_ids = np.nonzero(lx != lz)
    lx, lz = lx[pair_ids, tree_ids], lz[pair_ids, tree_ids]
    shared = np.cumprod(forest.ancestors[lx] == forest.ancestors[lz], axis=1).sum(axis=1)
    node = forest.ancestors[lx, shared - 1]  # the node where x and z part ways
    width = max(forest.max_depth, 1)
    weights_a, weights_b = _shapley_weights(width)
    flat = np.zeros((n_pairs * n_features, n_out))

    pair = pair_ids
    set_a = np.full((pair.shape[0], width), -1, dtype=np.int64)
    set_b = set_a.copy()
    size_a = np.zeros(pair.shape[0], dtype=np.int64)
    size_b = size_a.copy()
    while pair.size:
        at_leaf = forest.left[node] < 0
        if at_leaf.any():
            _credit_leaves(
                flat, forest.value[node[at_leaf]], pair[at_leaf], set_a[at_leaf], set_b[at_leaf],
                size_a[at_leaf], size_b[at_leaf], weights_a, weights_b, n_features,
            )
            keep = ~at_leaf
            pair, node = pair[keep], node[keep]
            set_a, set_b, size_a, size_b = set_a[keep], set_b[keep], size_a[keep], size_b[keep]
        if not pair.size:
            break
        feat = forest.feature[node]
        x_left = left_x[x_index[pair], node]
        z_left = left_z[z_index[pair], node]
        in_a = (set_a == feat[:, None]).any(axis=1)
        in_b = (set_b == feat[:, None]).any(axis=1)
        split = (x_left != z_left) & ~in_a & ~in_b
        go_left = np.where(in_b, z_left, x_left)
        child = np.where(go_left, forest.left[node], forest.right[node])
        if split.any():
            s = np.nonzero(split)[0]
            # the copy that takes this feature from z; the original takes it from x
            z_pair, z_node = pair[s], np.where(z_left[s], forest.left[node[s]], forest.right[node[s]])
            z_set_a, z_set_b = set_a[s], set_b[s].copy()
            z_set_b[np.arange(s.size), size_b[s]] = feat[s]
            z_size_a, z_size_b = size_a[s], size_b[s] + 1
            set_a[s, size_a[s]] = feat[s]
            size_a[s] += 1
            pair = np.concatenate([pair, z_pair])
            node = np.concatenate([child, z_node])
            set_a = np.concatenate([set_a, z_set_a])
            set_b = np.concatenate([set_b, z_set_b])
            size_a = np.concatenate([size_a, z_size_a])
            size_b = np.concatenate([size_b, z_size_b])
        else:
            node = child
    return flat.reshape(n_pairs, n_features, n_out)


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
