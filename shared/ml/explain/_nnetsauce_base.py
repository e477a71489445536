"""The tree-ensemble base model of an nnetsauce model, as per-pair attributions of its final output.

The base model sees nnetsauce's mapped features. Its output is a sum of trees (exact per-pair TreeSHAP),
optionally through sklearn's sigmoid calibrators (rescale multiplier per pair) and the calibrated
probabilities' normalisation (a two-player Shapley split between numerator and denominator), averaged
over the calibration folds. Each step keeps every pair's attributions summing to its output change.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.calibration import CalibratedClassifierCV, _SigmoidCalibration
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.tree import (
    DecisionTreeClassifier,
    DecisionTreeRegressor,
    ExtraTreeClassifier,
    ExtraTreeRegressor,
)

from shared.ml.explain._nnetsauce_pair_treeshap import (
    FlatForest,
    cross_shap,
    flatten_forest,
    forest_output,
    goes_left,
    leaves_of,
)

_FORESTS = (RandomForestClassifier, ExtraTreesClassifier, RandomForestRegressor, ExtraTreesRegressor)
_TREES = (DecisionTreeClassifier, ExtraTreeClassifier, DecisionTreeRegressor, ExtraTreeRegressor)
_CLASSIFIERS = (RandomForestClassifier, ExtraTreesClassifier, DecisionTreeClassifier, ExtraTreeClassifier)


def supports_base(obj: Any, *, classifier: bool) -> bool:
    """True for a fitted single-output sklearn forest or tree, or sigmoid-calibrated folds of one."""
    if classifier and isinstance(obj, CalibratedClassifierCV):
        folds: list[Any] = getattr(obj, "calibrated_classifiers_", None) or []
        return bool(folds) and all(
            fold.method == "sigmoid"
            and all(type(c) is _SigmoidCalibration for c in fold.calibrators)
            and _supports_trees(fold.estimator, classifier=True)
            for fold in folds
        )
    return _supports_trees(obj, classifier=classifier)


def _supports_trees(obj: Any, *, classifier: bool) -> bool:
    if type(obj) not in _FORESTS + _TREES or (type(obj) in _CLASSIFIERS) != classifier:
        return False
    fitted = hasattr(obj, "estimators_") if type(obj) in _FORESTS else hasattr(obj, "tree_")
    return fitted and getattr(obj, "n_outputs_", 1) == 1


def _flat(obj: Any, *, keep_last: bool = False) -> FlatForest:
    trees = [e.tree_ for e in obj.estimators_] if type(obj) in _FORESTS else [obj.tree_]
    forest = flatten_forest(trees, np.full(len(trees), 1.0 / len(trees)), normalise=type(obj) in _CLASSIFIERS)
    return replace(forest, value=forest.value[:, -1:]) if keep_last else forest


def _mean(arrays: list[np.ndarray]) -> np.ndarray:
    """The element-wise mean of equally shaped arrays (`sum` adds them in order; its type says a number
    may come out)."""
    return np.asarray(sum(arrays)) / len(arrays)


@dataclass(frozen=True)
class PairOutputs:
    """Per-pair mapped-space attributions (P, q, k) and the outputs (n, k) of explained and reference rows.

    phi has one column fewer than the outputs for a binary calibrated model (`BaseModelExplainer.binary`).
    """

    phi: np.ndarray
    out_x: np.ndarray  # (n_x, k)
    out_z: np.ndarray  # (n_z, k)


class BaseModelExplainer:
    """Per-pair attributions of the base model's output; flattens each forest once."""

    def __init__(self, obj: Any, *, n_classes: int | None) -> None:
        self.n_classes = n_classes
        # True when phi holds only the positive class of a binary calibrated model: the negative class's
        # attributions are exactly its negation, so the chain rule runs on one column instead of two
        self.binary = isinstance(obj, CalibratedClassifierCV) and n_classes == 2
        if isinstance(obj, CalibratedClassifierCV):
            # a binary calibrator reads only the positive-class column: explain that one alone
            keep_last = n_classes == 2
            self.folds = [(_flat(f.estimator, keep_last=keep_last), f) for f in obj.calibrated_classifiers_]
        else:
            self.folds = [(_flat(obj), None)]

    def explain_pairs(
        self, Zx: np.ndarray, Zz: np.ndarray, x_index: np.ndarray, z_index: np.ndarray
    ) -> PairOutputs:
        """Average over folds of each fold's calibrated output attributions."""
        results = [self._fold(forest, fold, Zx, Zz, x_index, z_index) for forest, fold in self.folds]
        return PairOutputs(
            phi=_mean([r.phi for r in results]),
            out_x=_mean([r.out_x for r in results]),
            out_z=_mean([r.out_z for r in results]),
        )

    def raw_folds(self, Zx: np.ndarray, Zz: np.ndarray) -> list[tuple[PairOutputs, float, float]]:
        """A binary calibrated model's folds before calibration: per-pair forest attributions of the positive
        class (P, q, 1), forest outputs, and each fold's sigmoid calibrator (a_, b_)."""
        if not self.binary:
            raise ValueError("raw_folds: only for a binary calibrated model")
        results = []
        for forest, fold in self.folds:
            raw = _forest_pairs(forest, Zx, Zz)
            calibrator = fold.calibrators[0]
            results.append((raw, float(calibrator.a_), float(calibrator.b_)))
        return results

    def _fold(
        self,
        forest: FlatForest,
        fold: Any,
        Zx: np.ndarray,
        Zz: np.ndarray,
        x_index: np.ndarray,
        z_index: np.ndarray,
    ) -> PairOutputs:
        raw = _forest_pairs(forest, Zx, Zz)
        if fold is None:
            return raw
        return _calibrate(raw, fold, self.n_classes or 2, x_index, z_index)


def _forest_pairs(forest: FlatForest, Zx: np.ndarray, Zz: np.ndarray) -> PairOutputs:
    """Exact per-pair TreeSHAP of one forest's output, with its outputs at both sets of rows."""
    left_x, left_z = goes_left(forest, Zx), goes_left(forest, Zz)
    leaves_x, leaves_z = leaves_of(forest, left_x), leaves_of(forest, left_z)
    phi = cross_shap(forest, left_x, left_z, Zx.shape[1]).reshape(-1, Zx.shape[1], forest.value.shape[1])
    return PairOutputs(phi, forest_output(forest, leaves_x), forest_output(forest, leaves_z))


def sigmoid_calibrated(forest_output: np.ndarray, a: float, b: float) -> np.ndarray:
    """A sigmoid calibrator's probability (scikit-learn's `_SigmoidCalibration.predict`)."""
    return expit(-(a * forest_output + b))


def _calibrate(
    raw: PairOutputs, fold: Any, n_classes: int, x_index: np.ndarray, z_index: np.ndarray
) -> PairOutputs:
    """sklearn's `_CalibratedClassifier.predict_proba`, carried through per pair.

    For two classes phi holds the positive class only (the negative one is its negation, see
    `BaseModelExplainer.binary`); the outputs hold both.
    """
    class_of_column = np.searchsorted(fold.classes, fold.estimator.classes_)
    if n_classes == 2:
        columns, targets = [raw.phi.shape[2] - 1], [0]
    else:
        columns, targets = list(range(raw.phi.shape[2])), list(class_of_column)
    P, q = raw.phi.shape[:2]
    phi_g = np.empty((P, q, len(columns)))
    g_x = np.zeros((raw.out_x.shape[0], n_classes))
    g_z = np.zeros((raw.out_z.shape[0], n_classes))
    for column, target, calibrator in zip(columns, targets, fold.calibrators, strict=True):
        fx, fz = raw.out_x[:, column], raw.out_z[:, column]
        gx, gz = (
            sigmoid_calibrated(fx, calibrator.a_, calibrator.b_),
            sigmoid_calibrated(fz, calibrator.a_, calibrator.b_),
        )
        output = 1 if n_classes == 2 else target
        g_x[:, output], g_z[:, output] = gx, gz
        np.multiply(
            raw.phi[:, :, column],
            _rescale(fx[x_index], fz[z_index], gx[x_index], gz[z_index], calibrator.a_)[:, None],
            out=phi_g[:, :, target],
        )
    if n_classes == 2:
        g_x[:, 0], g_z[:, 0] = 1.0 - g_x[:, 1], 1.0 - g_z[:, 1]
        return PairOutputs(phi_g, g_x, g_z)
    return _normalise(PairOutputs(phi_g, g_x, g_z), x_index, z_index)


def _rescale(fx: np.ndarray, fz: np.ndarray, gx: np.ndarray, gz: np.ndarray, a: float) -> np.ndarray:
    """Δg/Δf of the sigmoid per pair; its slope at the midpoint when Δf is too small to divide by."""
    df = fx - fz
    tiny = np.abs(df) < 1e-9
    g_mid = (gx + gz) / 2
    slope = -a * g_mid * (1 - g_mid)
    slopes: np.ndarray = np.where(tiny, slope, (gx - gz) / np.where(tiny, 1.0, df))
    return slopes


def _normalise(g: PairOutputs, x_index: np.ndarray, z_index: np.ndarray) -> PairOutputs:
    """p_c = g_c / Σg: exact split Δp_c = α Δg_c + β_c ΔΣg (the Shapley value of the two-input quotient)."""
    s_x, s_z = g.out_x.sum(axis=1), g.out_z.sum(axis=1)
    if (s_x == 0).any() or (s_z == 0).any():
        raise FloatingPointError("calibrated probabilities sum to zero: cannot normalise")
    p_x, p_z = g.out_x / s_x[:, None], g.out_z / s_z[:, None]
    sx, sz = s_x[x_index], s_z[z_index]
    alpha = (1.0 / sx + 1.0 / sz) / 2  # (P,)
    beta = -(g.out_x[x_index] + g.out_z[z_index]) / (2 * sx * sz)[:, None]  # (P, k)
    phi = alpha[:, None, None] * g.phi + beta[:, None, :] * g.phi.sum(axis=2, keepdims=True)
    return PairOutputs(phi, p_x, p_z)


def leaf_counts(obj: Any) -> list[int]:
    """The number of leaves of every tree in a supported base model (calibrated folds included)."""
    if isinstance(obj, CalibratedClassifierCV):
        return [count for fold in obj.calibrated_classifiers_ for count in leaf_counts(fold.estimator)]
    trees = [e.tree_ for e in obj.estimators_] if type(obj) in _FORESTS else [obj.tree_]
    return [int(tree.n_leaves) for tree in trees]
