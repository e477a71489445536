"""Benchmark: nnetsauce-tree SHAP against shap.Explainer's default, on the seed request.

Seed request: nnetsauce CustomClassifier(RandomForestClassifier(random_state=123), n_hidden_features=5,
seed=123) fitted on breast cancer's training rows, explaining its 171 test rows in probability space.
Reference: interventional SHAP with the full training set as background, estimated with 64
antithetic permutation pairs for each (test row, training row), drawn independently from local numpy
Generators (benchmarks/_shap_reference.py; nnetsauce reseeds the global one), on the first 20 test rows.
Prints times, the speed ratio and relative MAE of both explainers, and the reference's own error.

    .venv/bin/python benchmarks/shap_nnetsauce_inprocess.py [--quick] [--reference-rows K]

The error printed is the relative MAE, mean |estimate - reference| / mean |reference| over the reference
rows' class-1 values: the definition of seed_requests.py's reference table (for a binary classifier the
class-0 values are the class-1 values negated, so both columns give the same ratio).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from _shap_reference import permutation_reference, relative_mae

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "breast_cancer_dataset2.csv"


def load() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    frame = pd.read_csv(DATA)
    train = frame["training_index"].to_numpy() == 1
    X = frame.drop(columns=["target", "training_index"]).to_numpy(dtype=float)
    y = frame["target"].to_numpy()
    return X[train], y[train], X[~train], y[~train]


def fit_seed_model(X_train: np.ndarray, y_train: np.ndarray):
    import nnetsauce as ns
    from sklearn.ensemble import RandomForestClassifier

    model = ns.CustomClassifier(RandomForestClassifier(random_state=123), n_hidden_features=5, seed=123)
    return model.fit(X_train, y_train)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="8 reference pairs on 5 rows; shap default on 20 rows"
    )
    parser.add_argument(
        "--reference-rows", type=int, default=None, help="test rows of the reference (default 20)"
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import shap

    from shared.ml.explain._nnetsauce_pair_kernel import warm_up
    from shared.ml.explain.nnetsauce_tree import explain_nnetsauce_tree

    warm_up()  # numba compiles (or loads) the kernels once per process, as a worker does at start

    X_train, y_train, X_test, _ = load()
    model = fit_seed_model(X_train, y_train)
    n_ref_rows, n_ref_pairs = (5, 8) if args.quick else (20, 64)
    if args.reference_rows is not None:
        n_ref_rows = args.reference_rows
    n_shap_rows = 20 if args.quick else X_test.shape[0]

    ours_times, ours_cpu = [], []
    for _ in range(3):  # median of three: the machine is shared
        started, cpu = time.perf_counter(), time.process_time()
        ours = explain_nnetsauce_tree(model, X_train, X_test, task="classification", random_state=123)
        ours_times.append(time.perf_counter() - started)
        ours_cpu.append(time.process_time() - cpu)
    ours_seconds = sorted(ours_times)[1]
    started = time.perf_counter()
    ours_small = explain_nnetsauce_tree(model, X_train[:100], X_test, task="classification", random_state=123)
    ours_small_seconds = time.perf_counter() - started

    started, cpu = time.perf_counter(), time.process_time()
    default = shap.Explainer(model.predict_proba, X_train)(X_test[:n_shap_rows])
    shap_seconds = time.perf_counter() - started
    shap_cpu = time.process_time() - cpu

    started = time.perf_counter()
    found = permutation_reference(model.predict_proba, X_train, X_test[:n_ref_rows], n_ref_pairs, seed=2024)
    reference, reference_seconds = found.values[..., 1], time.perf_counter() - started

    additivity = np.abs(ours["values"].sum(axis=1) + ours["base_values"] - model.predict_proba(X_test)).max()
    per_row_shap = shap_seconds / n_shap_rows
    per_row_ours = ours_seconds / X_test.shape[0]
    print(
        f"reference: {n_ref_pairs} antithetic pairs per background row, full background "
        f"({X_train.shape[0]} rows), first {n_ref_rows} test rows, {reference_seconds:.1f} s, its own error "
        f"{found.relative_error():.4f}"
    )
    print(
        f"shap.Explainer default: {shap_seconds:.1f} s for {n_shap_rows} rows "
        f"({per_row_shap * 1e3:.0f} ms/row), relative MAE "
        f"{relative_mae(default.values[:n_ref_rows, :, 1], reference):.3f}"
    )
    print(
        f"nnetsauce-tree, full background: {ours_seconds:.2f} s for {X_test.shape[0]} rows "
        f"({per_row_ours * 1e3:.1f} ms/row), relative MAE "
        f"{relative_mae(ours['values'][:n_ref_rows, :, 1], reference):.3f}, "
        f"max additivity error {additivity:.1e}"
    )
    print(
        f"nnetsauce-tree, 100-row background: {ours_small_seconds:.2f} s, relative MAE "
        f"{relative_mae(ours_small['values'][:n_ref_rows, :, 1], reference):.3f}"
    )
    print(f"speed ratio (shap default / nnetsauce-tree, per row): {per_row_shap / per_row_ours:.1f}x")
    cpu_ratio = (shap_cpu / n_shap_rows) / (sorted(ours_cpu)[1] / X_test.shape[0])
    print(
        f"CPU seconds (process time, less sensitive to other load): shap default {shap_cpu:.1f}, "
        f"nnetsauce-tree {sorted(ours_cpu)[1]:.2f}; ratio per row {cpu_ratio:.1f}x"
    )


if __name__ == "__main__":
    main()
