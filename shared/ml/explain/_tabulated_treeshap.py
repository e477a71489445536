"""Exact path-dependent TreeSHAP for xgboost and lightgbm boosters, each leaf's game tabulated once.

xgboost's `pred_contribs` (and lightgbm's `pred_contrib`) run Lundberg's TreeSHAP for every row:
O(leaves x depth^2) floating-point work per tree and row. For a leaf, path-dependent TreeSHAP is the
Shapley value of a product game: with the distinct features k on the leaf's path, r_k the product of
their cover ratios (child cover / parent cover: xgboost's hessian sums, lightgbm's training rows) and
s_k = 1 when the row satisfies every split on k along the path (else 0),

    v(S) = value x prod_k (r_k + 1{k in S} (s_k - r_k)),

a repeated feature merged into one factor, as TreeSHAP's "unwinding" does. Its Shapley values depend on
the row only through the pattern s in {0, 1}^d, so each leaf's 2^d patterns are tabulated once per model
(`_leaf_tables`). A small tree goes one step further: its rows' contributions depend only on the vector
of its split decisions, so for a tree of at most MAX_TREE_SPLITS splits every decision vector's
contributions are tabulated too (`_tree_tables`), and a row costs one comparison per split and one table
row per tree (`_add_rows`). On boosted trees of depth 3 this is several times faster than
`pred_contribs`, for the same values up to xgboost's float32 rounding.

The trees are read from the booster's JSON model and compared as the library compares: xgboost in float32
(`x < threshold`), lightgbm in float64 (`x <= threshold`, written here as `x < next float`), each with its
missing-value rule. Anything this does not cover (categorical splits, vector or linear leaves, dart,
lightgbm's zero-as-missing, paths with many distinct features) makes `compile_*` return None, and the
caller keeps the library's own contributions.
"""

from __future__ import annotations

import json
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
from numba import njit

#: Distinct features on a leaf's path up to which its 2^d patterns are tabulated.
MAX_PATH_FEATURES = 8
#: Splits up to which a tree's every decision vector is tabulated (2^splits rows): depth-3 trees have 7.
MAX_TREE_SPLITS = 10
#: Rows explained together, tree by tree: their values and sums stay in cache (about 0.5 MB at 24 features)
#: while a tree's tables are read for all of them.
BLOCK_ROWS = 2048
#: Table entries (float64) above which a model keeps `pred_contribs` (deep, wide trees): 64 MB.
MAX_TABLE_ENTRIES = 8_000_000


@dataclass(frozen=True)
class CompiledTrees:
    """A booster's trees as flat arrays (global node and leaf numbering), with each leaf's table."""

    node_start: np.ndarray  # (T + 1,) first node of each tree
    tree_output: np.ndarray  # (T,) the output (class) each tree adds to
    feature: np.ndarray  # (N,) split feature; -1 at a leaf
    threshold: np.ndarray  # (N,) go left when x < threshold (float32 for xgboost, float64 for lightgbm)
    default_left: np.ndarray  # (N,) where a missing value goes
    leaf_start: np.ndarray  # (T + 1,) first leaf of each tree
    condition_start: np.ndarray  # (L + 1,) each leaf's path splits
    condition_node: np.ndarray  # the split's node
    condition_left: np.ndarray  # whether the path goes left there
    condition_slot: np.ndarray  # the split feature's slot among the leaf's distinct features
    slot_start: np.ndarray  # (L + 1,) each leaf's distinct features
    slot_feature: np.ndarray
    table_start: np.ndarray  # (L,) each leaf's 2^d x d block in `table`
    table: np.ndarray
    split_start: np.ndarray  # (T + 1,) each tree's splits, in node order (for its decision vector)
    split_node: np.ndarray
    tree_feature_start: np.ndarray  # (T + 1,) each tree's distinct split features
    tree_feature: np.ndarray
    tree_table_start: np.ndarray  # (T,) each tree's 2^splits x features block in `tree_table`; -1: none
    tree_table: np.ndarray
    n_outputs: int

    def leaf_paths(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The leaves' path arrays, in the order both kernels take them."""
        return (
            self.leaf_start,
            self.condition_start,
            self.condition_node,
            self.condition_left,
            self.condition_slot,
            self.slot_start,
        )


def compile_xgboost(booster: Any, iteration_range: tuple[int, int]) -> CompiledTrees | None:
    """An xgboost booster's trees of `iteration_range` tabulated, or None when this module does not
    cover them."""
    model = json.loads(booster.save_raw("json"))["learner"]
    gradient_booster = model["gradient_booster"]
    if gradient_booster.get("name") != "gbtree":
        return None
    forest = gradient_booster["model"]
    bounds = forest.get("iteration_indptr")
    if bounds is None:
        return None
    end = iteration_range[1] or len(bounds) - 1  # (0, 0): every tree, as in xgboost's predict
    first, last = bounds[iteration_range[0]], bounds[min(end, len(bounds) - 1)]
    trees = forest["trees"][first:last]
    outputs = forest["tree_info"][first:last]
    params = model["learner_model_param"]
    n_outputs = max(int(params.get("num_class", "0")), 1) * max(int(params.get("num_target", "1")), 1)
    for tree in trees:
        if int(tree["tree_param"].get("size_leaf_vector", "1")) > 1 or any(tree["split_type"]):
            return None
    return _compile(trees, np.asarray(outputs, dtype=np.int64), n_outputs, MAX_TREE_SPLITS, np.float32)


def compile_lightgbm(booster: Any, n_iterations: int | None) -> CompiledTrees | None:
    """A lightgbm booster's trees of its first `n_iterations` (None or 0: all) tabulated, or None when this
    module does not cover them. lightgbm's TreeSHAP weighs a split's branches by their training rows."""
    model = booster.dump_model()
    per_iteration = int(model["num_tree_per_iteration"])
    infos = model["tree_info"]
    if n_iterations and n_iterations > 0:
        infos = infos[: n_iterations * per_iteration]
    trees = []
    for info in infos:
        tree = _lightgbm_arrays(info["tree_structure"])
        if tree is None or info.get("num_cat", 0):
            return None
        trees.append(tree)
    outputs = np.arange(len(trees), dtype=np.int64) % per_iteration
    return _compile(trees, outputs, per_iteration, MAX_TREE_SPLITS, np.float64)


def _lightgbm_arrays(root: dict[str, Any]) -> dict[str, Any] | None:
    """A lightgbm tree (nested dicts) in the flat form of xgboost's JSON trees, its splits made `x < t`:
    `x <= t` is `x < nextafter(t, inf)`, and a missing value goes where lightgbm sends it (a split of
    missing type None reads it as 0.0)."""
    arrays: dict[str, list[Any]] = {key: [] for key in FLAT_TREE_KEYS}
    pending = deque([root])
    while pending:
        node = pending.popleft()
        index = len(arrays["left_children"])
        if "leaf_value" in node or "split_feature" not in node:
            if "leaf_coeff" in node:  # a linear tree's leaf: not a constant
                return None
            arrays["left_children"].append(-1)
            arrays["right_children"].append(-1)
            arrays["split_indices"].append(0)
            arrays["split_conditions"].append(node.get("leaf_value", 0.0))
            arrays["default_left"].append(0)
            arrays["sum_hessian"].append(float(node.get("leaf_count", 0)))
            continue
        if node["decision_type"] != "<=" or node["missing_type"] not in ("None", "NaN"):
            return None
        threshold = float(node["threshold"])
        left = node["default_left"] if node["missing_type"] == "NaN" else threshold >= 0.0
        first_child = index + len(pending) + 1  # breadth first: the children come after the queue
        arrays["left_children"].append(first_child)
        arrays["right_children"].append(first_child + 1)
        arrays["split_indices"].append(int(node["split_feature"]))
        arrays["split_conditions"].append(float(np.nextafter(threshold, np.inf)))
        arrays["default_left"].append(int(left))
        arrays["sum_hessian"].append(float(node["internal_count"]))
        pending.extend((node["left_child"], node["right_child"]))
    return arrays


def contributions(compiled: CompiledTrees, X: np.ndarray, n_threads: int = 1) -> np.ndarray:
    """(n, outputs, p + 1) SHAP values in float64, xgboost's layout; the last column, the bias, is left
    at zero: the caller sets it from the model's own margin, so that rows add up to it exactly.

    `n_threads` Python threads share the rows: the compiled loop releases the GIL. (Not numba's own
    threading layer: its OpenMP pool would not survive the fork into a worker's computation child.)"""
    rows = np.ascontiguousarray(X, dtype=compiled.threshold.dtype)  # as the library compares
    out = np.zeros((rows.shape[0], compiled.n_outputs, rows.shape[1] + 1))
    bounds = np.linspace(0, rows.shape[0], max(1, min(n_threads, rows.shape[0])) + 1).astype(int)
    spans = [slice(start, stop) for start, stop in pairwise(bounds)]
    if len(spans) == 1:
        _add(compiled, rows, out)
    else:
        with ThreadPoolExecutor(len(spans)) as pool:
            list(pool.map(lambda span: _add(compiled, rows[span], out[span]), spans))
    return out


def warm_up() -> None:
    """Compile (or load from numba's disk cache) the kernels on a one-split tree, before any job needs
    them: a worker calls this at start, so its first SHAP job does not pay the compilation (about 1 s)."""
    stump = {
        "left_children": [1, -1, -1],
        "right_children": [2, -1, -1],
        "split_indices": [0, 0, 0],
        "split_conditions": [0.5, -1.0, 1.0],
        "default_left": [1, 0, 0],
        "sum_hessian": [2.0, 1.0, 1.0],
    }
    for dtype in (np.float32, np.float64):  # xgboost's comparisons, lightgbm's
        for max_tree_splits in (1, 0):  # a small tree's table, then the per-leaf path
            compiled = _compile([stump], np.zeros(1, dtype=np.int64), 1, max_tree_splits, dtype)
            assert compiled is not None
            contributions(compiled, np.array([[0.0], [1.0]]))


def _add(compiled: CompiledTrees, rows: np.ndarray, out: np.ndarray) -> None:
    """Block by block of rows (each block's rows and sums stay in cache while every tree passes)."""
    for start in range(0, rows.shape[0], BLOCK_ROWS):
        _add_block(compiled, rows[start : start + BLOCK_ROWS], out[start : start + BLOCK_ROWS])


def _add_block(compiled: CompiledTrees, rows: np.ndarray, out: np.ndarray) -> None:
    _add_rows(
        rows,
        compiled.node_start,
        compiled.tree_output,
        compiled.feature,
        compiled.threshold,
        compiled.default_left,
        *compiled.leaf_paths(),
        compiled.slot_feature,
        compiled.table_start,
        compiled.table,
        compiled.split_start,
        compiled.split_node,
        compiled.tree_feature_start,
        compiled.tree_feature,
        compiled.tree_table_start,
        compiled.tree_table,
        out,
    )


FLAT_TREE_KEYS = (
    "left_children",
    "right_children",
    "split_indices",
    "split_conditions",
    "default_left",
    "sum_hessian",
)


def _compile(
    trees: list[dict[str, Any]],
    outputs: np.ndarray,
    n_outputs: int,
    max_tree_splits: int,
    dtype: type[np.floating],
) -> CompiledTrees | None:
    node_start = np.zeros(len(trees) + 1, dtype=np.int64)
    features, thresholds, defaults = [], [], []
    leaf_start = [0]
    condition_start, condition_node, condition_left, condition_slot = [0], [], [], []
    slot_start, ratios, leaf_values, table_start = [0], [], [], []
    slot_feature: list[int] = []
    table_size = 0
    for t, tree in enumerate(trees):
        offset = int(node_start[t])
        left = np.asarray(tree["left_children"], dtype=np.int64)
        right = np.asarray(tree["right_children"], dtype=np.int64)
        cover = np.asarray(tree["sum_hessian"], dtype=np.float64)
        value = np.asarray(tree["split_conditions"], dtype=np.float64)
        leaf = left == -1
        features.append(np.where(leaf, -1, np.asarray(tree["split_indices"], dtype=np.int64)))
        thresholds.append(np.asarray(tree["split_conditions"], dtype=dtype))
        defaults.append(np.asarray(tree["default_left"], dtype=np.bool_))
        node_start[t + 1] = offset + len(left)
        # depth-first from the root: (node, path of (node, went_left))
        stack: list[tuple[int, list[tuple[int, bool]]]] = [(0, [])]
        while stack:
            node, path = stack.pop()
            if not leaf[node]:
                stack.append((int(right[node]), [*path, (node, False)]))
                stack.append((int(left[node]), [*path, (node, True)]))
                continue
            slots: dict[int, int] = {}
            ratio: list[float] = []
            for split, went_left in path:
                split_feature = int(tree["split_indices"][split])
                child = left[split] if went_left else right[split]
                share = cover[child] / cover[split] if cover[split] > 0 else 0.0
                if split_feature not in slots:
                    slots[split_feature] = len(slots)
                    ratio.append(1.0)
                ratio[slots[split_feature]] *= share
                condition_node.append(offset + split)
                condition_left.append(went_left)
                condition_slot.append(slots[split_feature])
            if len(slots) > MAX_PATH_FEATURES:
                return None
            condition_start.append(len(condition_node))
            slot_feature.extend(slots)
            slot_start.append(len(slot_feature))
            ratios.append(np.asarray(ratio))
            leaf_values.append(value[node])
            table_start.append(table_size)
            table_size += (1 << len(slots)) * len(slots)
            if table_size > MAX_TABLE_ENTRIES:
                return None
        leaf_start.append(len(leaf_values))
    ratio_start = np.asarray(slot_start, dtype=np.int64)
    table = np.zeros(table_size)
    _leaf_tables(
        ratio_start,
        np.concatenate(ratios) if ratios else np.zeros(0),
        np.asarray(leaf_values, dtype=np.float64),
        np.asarray(table_start, dtype=np.int64),
        table,
    )
    feature = np.concatenate(features).astype(np.int64) if features else np.zeros(0, dtype=np.int64)
    # Each tree's splits in node order and its distinct split features; a leaf slot's place among them.
    split_start, split_node = [0], []
    split_position = np.full(len(feature), -1, dtype=np.int64)
    tree_feature_start = [0]
    tree_feature: list[int] = []
    slot_tree_position = np.zeros(len(slot_feature), dtype=np.int64)
    tree_table_start = np.full(len(trees), -1, dtype=np.int64)
    tree_table_size = 0
    for t in range(len(trees)):
        nodes = np.arange(node_start[t], node_start[t + 1])
        splits = nodes[feature[nodes] >= 0]
        split_position[splits] = np.arange(len(splits))
        split_node.extend(splits.tolist())
        split_start.append(len(split_node))
        place: dict[int, int] = {}
        for f in feature[splits].tolist():
            place.setdefault(f, len(place))
        tree_feature.extend(place)
        tree_feature_start.append(len(tree_feature))
        for leaf in range(leaf_start[t], leaf_start[t + 1]):
            for slot in range(slot_start[leaf], slot_start[leaf + 1]):
                slot_tree_position[slot] = place[slot_feature[slot]]
        if (
            len(splits) <= max_tree_splits
            and tree_table_size + (len(place) << len(splits)) <= MAX_TABLE_ENTRIES
        ):
            tree_table_start[t] = tree_table_size
            tree_table_size += len(place) << len(splits)
    tree_table = np.zeros(tree_table_size)
    compiled = CompiledTrees(
        node_start=node_start,
        tree_output=outputs,
        feature=feature,
        threshold=np.concatenate(thresholds) if thresholds else np.zeros(0, dtype=dtype),
        default_left=np.concatenate(defaults) if defaults else np.zeros(0, dtype=np.bool_),
        leaf_start=np.asarray(leaf_start, dtype=np.int64),
        condition_start=np.asarray(condition_start, dtype=np.int64),
        condition_node=np.asarray(condition_node, dtype=np.int64),
        condition_left=np.asarray(condition_left, dtype=np.bool_),
        condition_slot=np.asarray(condition_slot, dtype=np.int64),
        slot_start=ratio_start,
        slot_feature=np.asarray(slot_feature, dtype=np.int64),
        table_start=np.asarray(table_start, dtype=np.int64),
        table=table,
        split_start=np.asarray(split_start, dtype=np.int64),
        split_node=np.asarray(split_node, dtype=np.int64),
        tree_feature_start=np.asarray(tree_feature_start, dtype=np.int64),
        tree_feature=np.asarray(tree_feature, dtype=np.int64),
        tree_table_start=tree_table_start,
        tree_table=tree_table,
        n_outputs=n_outputs,
    )
    _tree_tables(
        *compiled.leaf_paths(),
        slot_tree_position,
        compiled.table_start,
        compiled.table,
        split_position,
        compiled.split_start,
        compiled.tree_feature_start,
        compiled.tree_table_start,
        compiled.tree_table,
    )
    return compiled


@njit(cache=True, nogil=True)
def _leaf_tables(
    slot_start: np.ndarray, ratios: np.ndarray, values: np.ndarray, table_start: np.ndarray, table: np.ndarray
) -> None:
    """Each leaf's Shapley values for every pattern s: the product game's dividends shared equally.

    phi_i = value x delta_i x sum_m c_m / (m + 1), with delta_k = s_k - r_k and c_m the coefficient of
    z^m in prod_{k != i} (r_k + delta_k z): the dividend of each coalition holding i, split among its
    |T| + 1 members.
    """
    for leaf in range(values.shape[0]):
        start = slot_start[leaf]
        d = slot_start[leaf + 1] - start
        r = ratios[start : start + d]
        delta = np.empty(d)
        coefficients = np.empty(d + 1)
        for pattern in range(1 << d):
            for k in range(d):
                delta[k] = (1.0 if (pattern >> k) & 1 else 0.0) - r[k]
            base = table_start[leaf] + pattern * d
            for i in range(d):
                coefficients[:] = 0.0
                coefficients[0] = 1.0
                degree = 0
                for k in range(d):
                    if k == i:
                        continue
                    for m in range(degree + 1, 0, -1):
                        coefficients[m] = coefficients[m] * r[k] + coefficients[m - 1] * delta[k]
                    coefficients[0] *= r[k]
                    degree += 1
                total = 0.0
                for m in range(degree + 1):
                    total += coefficients[m] / (m + 1)
                table[base + i] = values[leaf] * delta[i] * total


@njit(cache=True, nogil=True)
def _tree_tables(
    leaf_start: np.ndarray,
    condition_start: np.ndarray,
    condition_node: np.ndarray,
    condition_left: np.ndarray,
    condition_slot: np.ndarray,
    slot_start: np.ndarray,
    slot_tree_position: np.ndarray,
    table_start: np.ndarray,
    table: np.ndarray,
    split_position: np.ndarray,
    split_start: np.ndarray,
    tree_feature_start: np.ndarray,
    tree_table_start: np.ndarray,
    tree_table: np.ndarray,
) -> None:
    """For each small tree and each vector of its split decisions (bit j: the j-th split goes left), the
    sum of its leaves' table rows at the patterns those decisions give, over the tree's features."""
    for t in range(leaf_start.shape[0] - 1):
        if tree_table_start[t] < 0:
            continue
        n_splits = split_start[t + 1] - split_start[t]
        width = tree_feature_start[t + 1] - tree_feature_start[t]
        for vector in range(1 << n_splits):
            base = tree_table_start[t] + vector * width
            for leaf in range(leaf_start[t], leaf_start[t + 1]):
                d = slot_start[leaf + 1] - slot_start[leaf]
                pattern = (1 << d) - 1
                for c in range(condition_start[leaf], condition_start[leaf + 1]):
                    went_left = (vector >> split_position[condition_node[c]]) & 1 == 1
                    if went_left != condition_left[c]:
                        pattern &= ~(1 << condition_slot[c])
                row = table_start[leaf] + pattern * d
                for k in range(d):
                    tree_table[base + slot_tree_position[slot_start[leaf] + k]] += table[row + k]


@njit(cache=True, nogil=True)
def _add_rows(
    rows: np.ndarray,
    node_start: np.ndarray,
    tree_output: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    default_left: np.ndarray,
    leaf_start: np.ndarray,
    condition_start: np.ndarray,
    condition_node: np.ndarray,
    condition_left: np.ndarray,
    condition_slot: np.ndarray,
    slot_start: np.ndarray,
    slot_feature: np.ndarray,
    table_start: np.ndarray,
    table: np.ndarray,
    split_start: np.ndarray,
    split_node: np.ndarray,
    tree_feature_start: np.ndarray,
    tree_feature: np.ndarray,
    tree_table_start: np.ndarray,
    tree_table: np.ndarray,
    out: np.ndarray,
) -> None:
    n_trees = node_start.shape[0] - 1
    max_nodes = 1
    for t in range(n_trees):
        max_nodes = max(max_nodes, node_start[t + 1] - node_start[t])
    goes_left = np.empty(max_nodes, dtype=np.bool_)
    # Tree by tree over the block's rows: a deep tree's tables (kilobytes a leaf) stay in cache meanwhile.
    for t in range(n_trees):
        output = tree_output[t]
        if tree_table_start[t] >= 0:  # a small tree: its decision vector indexes its table
            splits_from, n_splits = split_start[t], split_start[t + 1] - split_start[t]
            first_feature = tree_feature_start[t]
            width = tree_feature_start[t + 1] - first_feature
            for row in range(rows.shape[0]):
                x = rows[row]
                vector = 0
                for j in range(n_splits):
                    node = split_node[splits_from + j]
                    value = x[feature[node]]
                    left = default_left[node] if np.isnan(value) else value < threshold[node]
                    if left:
                        vector |= 1 << j
                base = tree_table_start[t] + vector * width
                for k in range(width):
                    out[row, output, tree_feature[first_feature + k]] += tree_table[base + k]
            continue
        first = node_start[t]
        for row in range(rows.shape[0]):
            x = rows[row]
            for node in range(first, node_start[t + 1]):
                f = feature[node]
                if f >= 0:
                    value = x[f]
                    missing = np.isnan(value)
                    goes_left[node - first] = default_left[node] if missing else value < threshold[node]
            for leaf in range(leaf_start[t], leaf_start[t + 1]):
                d = slot_start[leaf + 1] - slot_start[leaf]
                pattern = (1 << d) - 1
                for c in range(condition_start[leaf], condition_start[leaf + 1]):
                    if goes_left[condition_node[c] - first] != condition_left[c]:
                        pattern &= ~(1 << condition_slot[c])
                base = table_start[leaf] + pattern * d
                slots = slot_start[leaf]
                for k in range(d):
                    out[row, output, slot_feature[slots + k]] += table[base + k]
