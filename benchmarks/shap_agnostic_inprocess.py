"""Time shap.Explainer's default against our model-agnostic SHAP estimator on the seed requests.

Seed requests (seed 123, training_index split): nnetsauce CustomRegressor(ElasticNet) on boston and
nnetsauce CustomClassifier(RandomForest) on breast cancer. Both explainers are timed in this run and
compared with a reference: exact enumeration (2**13 coalitions, full training background) on the
first boston test rows; for breast cancer 64 antithetic permutation pairs for each (test row, training
row), drawn independently (benchmarks/_shap_reference.py), on the first test rows.
Prints times, the speed ratio and the relative MAE (mean|est - ref| / mean|ref|) on the reference rows.
Run: .venv/bin/python benchmarks/shap_agnostic_inprocess.py [--quick]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import nnetsauce as ns
import numpy as np
import pandas as pd
import shap
from _shap_reference import permutation_reference, relative_mae
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import ElasticNet, RidgeCV

from shared.ml.explain.agnostic import explain_agnostic

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
SEED = 123


def load(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    frame = pd.read_csv(DATA / f"{name}.csv")
    train = frame.pop("training_index").to_numpy() == 1
    y = frame.pop("target").to_numpy()
    X = frame.to_numpy(dtype=float)
    return X[train], y[train], X[~train], y[~train]


def shap_default(predict, X_train, X_test) -> tuple[np.ndarray, float]:
    """shap.Explainer as a user writes it; its permutation sampler draws from numpy's global RNG."""
    np.random.seed(SEED)
    started = time.perf_counter()
    explanation = shap.Explainer(predict, X_train, seed=SEED)(X_test)
    seconds = time.perf_counter() - started
    values = explanation.values
    return (values if values.ndim == 3 else values[:, :, None]), seconds


def ours(predict, X_train, X_test) -> tuple[np.ndarray, float, dict]:
    started = time.perf_counter()
    result = explain_agnostic(predict, X_train, X_test, random_state=SEED)
    seconds = time.perf_counter() - started
    values = result["values"]
    return (values if values.ndim == 3 else values[:, :, None]), seconds, result


def report(case: str, n_rows: int, n_ref: int, theirs, their_seconds, mine, my_seconds, result, reference):
    print(f"\n{case}: {n_rows} test rows, reference on the first {n_ref}")
    print(f"  {'explainer':<34}{'seconds':>9}{'rel. MAE':>10}{'model evals':>14}")
    their_error = relative_mae(theirs[:n_ref], reference)
    print(f"  {'shap.Explainer default':<34}{their_seconds:>9.2f}{their_error:>10.3f}")
    print(
        f"  {'explain_agnostic (' + result['explainer'] + ')':<34}{my_seconds:>9.2f}"
        f"{relative_mae(mine[:n_ref], reference):>10.3f}{result['n_model_evals']:>14,}"
    )
    estimate = result["error_estimate"]
    print(f"  speed-up {their_seconds / my_seconds:.1f}x; our error_estimate (MAE) {estimate:.4g}")
    print(
        f"  mean |ref| {np.abs(reference).mean():.4g}, our MAE {np.abs(mine[:n_ref] - reference).mean():.4g}",
        flush=True,
    )


def regression_case(quick: bool, base_name: str) -> None:
    X_train, y_train, X_test, _ = load("boston_dataset2")
    base = ElasticNet(random_state=SEED) if base_name == "ElasticNet" else RidgeCV()
    model = ns.CustomRegressor(obj=base, n_hidden_features=5, seed=SEED)
    model.fit(X_train, y_train)
    theirs, their_seconds = shap_default(model.predict, X_train, X_test)
    mine, my_seconds, result = ours(model.predict, X_train, X_test)
    n_ref = 3 if quick else 12
    started = time.perf_counter()
    reference = explain_agnostic(model.predict, X_train, X_test[:n_ref], random_state=0, exact_up_to=13)
    print(f"\n(reference: exact enumeration, {time.perf_counter() - started:.1f} s)")
    report(
        f"nnetsauce({base_name}) regressor, boston",
        X_test.shape[0],
        n_ref,
        theirs,
        their_seconds,
        mine,
        my_seconds,
        result,
        reference["values"][:, :, None],
    )


def classification_case(quick: bool) -> None:
    X_train, y_train, X_test, _ = load("breast_cancer_dataset2")
    model = ns.CustomClassifier(
        obj=RandomForestClassifier(random_state=SEED), n_hidden_features=5, seed=SEED
    ).fit(X_train, y_train)
    if quick:
        X_test = X_test[:40]
    theirs, their_seconds = shap_default(model.predict_proba, X_train, X_test)
    mine, my_seconds, result = ours(model.predict_proba, X_train, X_test)
    n_ref = 4 if quick else 20
    n_pairs = 16 if quick else 64
    started = time.perf_counter()
    found = permutation_reference(model.predict_proba, X_train, X_test[:n_ref], n_pairs, seed=999)
    reference = found.values
    print(
        f"\n(reference: {n_pairs} antithetic pairs per background row, full background, "
        f"{time.perf_counter() - started:.1f} s, its own error {found.relative_error():.4f})"
    )
    report(
        "nnetsauce(RandomForest) classifier, breast cancer",
        X_test.shape[0],
        n_ref,
        theirs,
        their_seconds,
        mine,
        my_seconds,
        result,
        reference,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer reference rows and pairs")
    parser.add_argument("--only", choices=["regression", "classification"], default=None)
    args = parser.parse_args()
    if args.only in (None, "regression"):
        regression_case(args.quick, "ElasticNet")
        regression_case(args.quick, "RidgeCV")
    if args.only in (None, "classification"):
        classification_case(args.quick)


if __name__ == "__main__":
    main()
