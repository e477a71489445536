"""Benchmark: nnetsauce-tree SHAP against shap.Explainer's default, on the seed request.

Seed request: nnetsauce CustomClassifier(RandomForestClassifier(random_state=123), n_hidden_features=5,
seed=123) fitted on breast cancer's training rows, explaining its 171 test rows in probability space.
Reference: interventional SHAP with the full training set as background, estimated with 128
antithetic permutation pairs (local numpy Generator; nnetsauce reseeds the global one) on the first
20 test rows. Prints times, the speed ratio and relative MAE of both explainers, from one run.

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


def permutation_reference(
    predict, X_explain: np.ndarray, background: np.ndarray, n_pairs: int, seed: int, perms_per_call: int = 8
) -> np.ndarray:
    """(n, p) interventional SHAP of output column 1 by antithetic permutation sampling, batched."""
    n_rows, p = X_explain.shape
    rng = np.random.default_rng(seed)
    phi = np.zeros((n_rows, p))
    for i, x in enumerate(X_explain):
        perms = [rng.permutation(p) for _ in range(n_pairs)]
        perms = perms + [perm[::-1] for perm in perms]
        for start in range(0, len(perms), perms_per_call):
            batch = perms[start : start + perms_per_call]
            # for each permutation, the p + 1 nested coalitions (0..p features from x), over the background
            points = np.repeat(background[None, None], len(batch), axis=0).repeat(p + 1, axis=1)
            for b, perm in enumerate(batch):
                for k in range(1, p + 1):
                    points[b, k:, :, perm[k - 1]] = x[perm[k - 1]]
            values = predict(points.reshape(-1, p))[:, 1].reshape(len(batch), p + 1, -1).mean(axis=2)
            for b, perm in enumerate(batch):
                phi[i, perm] += np.diff(values[b])
        phi[i] /= len(perms)
    return phi


def relative_mae(estimate: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(estimate - reference).mean() / np.abs(reference).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="8 reference pairs on 5 rows; shap default on 20 rows"
    )
    parser.add_argument(
        "--reference-rows", type=int, default=None, help="test rows of the 128-pair reference (default 20)"
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import shap

    from shared.ml.explain._nnetsauce_pair_kernel import warm_up
    from shared.ml.explain.nnetsauce_tree import explain_nnetsauce_tree

    warm_up()  # numba compiles (or loads) the kernels once per process, as a worker does at start

    X_train, y_train, X_test, _ = load()
    model = fit_seed_model(X_train, y_train)
    n_ref_rows, n_ref_pairs = (5, 8) if args.quick else (20, 128)
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
    reference = permutation_reference(
        model.predict_proba, X_test[:n_ref_rows], X_train, n_ref_pairs, seed=2024
    )
    reference_seconds = time.perf_counter() - started

    additivity = np.abs(ours["values"].sum(axis=1) + ours["base_values"] - model.predict_proba(X_test)).max()
    per_row_shap = shap_seconds / n_shap_rows
    per_row_ours = ours_seconds / X_test.shape[0]
    print(
        f"reference: {n_ref_pairs} antithetic pairs, full background ({X_train.shape[0]} rows), "
        f"first {n_ref_rows} test rows, {reference_seconds:.1f} s"
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
