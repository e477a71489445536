"""The NumPy classification report equals scikit-learn's, key for key and bit for bit."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from sklearn import metrics as skm

from shared.ml.classification_report import classification_report
from shared.ml.metrics import _json_report


def sklearn_report(y_true: np.ndarray, y_pred: np.ndarray, names: list[str]) -> dict:
    """What shared/ml/metrics.py computed before: scikit-learn's report, with the accuracy always there."""
    report = skm.classification_report(
        y_true, y_pred, labels=list(range(len(names))), target_names=names, output_dict=True, zero_division=0
    )
    if "accuracy" not in report:
        report["accuracy"] = skm.accuracy_score(y_true, y_pred)
    return report


def assert_same(y_true: list[int] | np.ndarray, y_pred: list[int] | np.ndarray, names: list[str]) -> None:
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    ours = classification_report(y_true, y_pred, names)
    theirs = sklearn_report(y_true, y_pred, names)
    assert list(ours) == list(theirs)
    assert orjson.dumps(_json_report(ours)) == orjson.dumps(_json_report(theirs))
    assert repr(ours) == repr(theirs)  # the same floats to the last bit, supports as floats too


@pytest.mark.parametrize(
    ("y_true", "y_pred", "names"),
    [
        ([0, 1, 1, 0, 1], [0, 1, 0, 0, 1], ["0", "1"]),  # binary
        ([0, 1, 2, 2, 1, 0, 2], [0, 2, 2, 2, 1, 1, 0], ["setosa", "versicolor", "virginica"]),
        ([0, 1, 2, 2, 1, 0], [0, 1, 1, 1, 1, 0], ["a", "b", "c"]),  # a class never predicted
        ([0, 1, 1, 0], [0, 2, 1, 0], ["a", "b", "c"]),  # a class absent from y_true
        ([0, 0, 0], [0, 0, 0], ["a", "b", "c"]),  # one class seen, two neither true nor predicted
        ([0, 0, 0], [0, 0, 0], ["only"]),  # a single class
        ([1, 1, 1], [0, 0, 0], ["0", "1"]),  # nothing right
        ([0, 1, 2], [1, 2, 0], ["x", "accuracy", "macro avg"]),  # names that collide with summary keys
        ([0, 1, 2, 1], [0, 1, 1, 2], ["01", "1", "-3"]),
    ],
)
def test_equals_scikit_learn(y_true: list[int], y_pred: list[int], names: list[str]) -> None:
    assert_same(y_true, y_pred, names)


@pytest.mark.parametrize("seed", range(40))
def test_equals_scikit_learn_on_random_labels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_classes = int(rng.integers(1, 12))
    n_rows = int(rng.integers(1, 400))
    seen = int(rng.integers(1, n_classes + 1))  # some classes may never appear at all
    y_true = rng.integers(0, seen, n_rows)
    noisy = rng.random(n_rows) < rng.random()
    y_pred = np.where(noisy, rng.integers(0, n_classes, n_rows), y_true)
    assert_same(y_true, y_pred, [f"class {i}" for i in range(n_classes)])


def test_codes_outside_the_classes_fall_back_to_scikit_learn() -> None:
    assert_same([0, 1, 3], [0, 1, 1], ["a", "b"])
