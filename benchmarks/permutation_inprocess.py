"""Time scikit-learn's permutation_importance against ours on the seed request, in one process.

The seed request: nnetsauce CustomClassifier(RandomForestClassifier(random_state=123),
n_hidden_features=5, seed=123) fitted on breast cancer's training rows, 10 repeats on its test rows.
Prints both times, the ratio, and the largest difference between the two results.
Run: .venv/bin/python benchmarks/permutation_inprocess.py
"""

from __future__ import annotations

import time
from pathlib import Path

import nnetsauce as ns
import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.inspection import permutation_importance as sklearn_permutation_importance

from shared.ml.explain.permutation import permutation_importance

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "breast_cancer_dataset2.csv"
N_REPEATS = 10
SEED = 123


def main() -> None:
    frame = pd.read_csv(DATA)
    train = frame.pop("training_index").to_numpy() == 1
    y = frame.pop("target").to_numpy()
    X = frame.to_numpy(dtype=float)
    model = ns.CustomClassifier(
        obj=RandomForestClassifier(random_state=SEED), n_hidden_features=5, seed=SEED
    ).fit(X[train], y[train])
    X_test, y_test = X[~train], y[~train]

    started = time.perf_counter()
    theirs = sklearn_permutation_importance(
        model, X_test, y_test, scoring="accuracy", n_repeats=N_REPEATS, random_state=SEED
    )
    sklearn_seconds = time.perf_counter() - started

    started = time.perf_counter()
    ours = permutation_importance(
        model, X_test, y_test, task="classification", n_repeats=N_REPEATS, random_state=SEED
    )
    ours_seconds = time.perf_counter() - started

    difference = np.abs(ours["importances"] - theirs.importances).max()
    print(f"test rows {X_test.shape[0]}, features {X_test.shape[1]}, repeats {N_REPEATS}")
    print(f"sklearn permutation_importance: {sklearn_seconds:.3f} s")
    print(f"ours (batched):                 {ours_seconds:.3f} s in {ours['n_predict_calls']} predict calls")
    print(f"speed-up: {sklearn_seconds / ours_seconds:.1f}x; largest difference: {difference:.1e}")


if __name__ == "__main__":
    main()
