"""Check shared/ml/cost.py against measured jobs: the estimate beside the measured time, in one process.

Each job runs whole through the ML core (`shared.ml.pipeline.run`, one model thread, as a worker runs
it); the table shows the estimate, the measured seconds and their ratio (above 1: the estimate is high,
as intended), and whether a job of at least 1 s is within 0.8x to 2x. The measured seconds are the CPU
seconds of this process (one thread, so the seconds a worker is busy), which other processes' load does
not inflate as it does wall time. The matrix has the seed files, real-shaped tables (text categories,
missing values, ids, a target named otherwise: tests/data/tables) and scikit-learn's digits (64
features) with the default nnetsauce model and SHAP. The many-class job of tests/service/test_fairness.py
(gradient boosting, 100 classes) is measured with 3 estimators and its estimate compared at the same
size; its estimate with the most estimators accepted (1,000) is printed after.
Run: .venv/bin/python benchmarks/cost_calibration.py   (a few minutes on the reference machine)
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from api.endpoint_params import PARAMS_BY_ENDPOINT, job_spec
from benchmarks._data import regression_csv
from shared.ml.cost import CostEstimate, estimate_cost, shape_of
from shared.ml.ingest.dataset import roles_of
from shared.ml.ingest.upload import load_dataset
from shared.ml.pipeline import explain, prepare
from shared.ml.spec import JobSpec, Limits
from tests.canonical import canonical

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


def many_classes_csv(n_rows: int = 400, n_features: int = 3, n_classes: int = 100, seed: int = 0) -> bytes:
    """The many-class upload of tests/service/test_fairness.py: 400 rows, 3 features, 100 classes."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, n_features))
    y = np.arange(n_rows) % n_classes
    lines = [",".join([f"x{i}" for i in range(n_features)] + ["target"])]
    lines += [",".join([f"{v:.5f}" for v in X[r]] + [str(y[r])]) for r in range(n_rows)]
    return ("\n".join(lines) + "\n").encode()


def binary_csv(n_rows: int = 2000, n_features: int = 8, seed: int = 0) -> bytes:
    """The fault tests' slow job data (tests/faults/conftest.py slow_csv)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, n_features))
    y = (X[:, 0] + X[:, 1] * X[:, 2] + rng.normal(size=n_rows) > 0).astype(int)
    lines = [",".join([f"x{i}" for i in range(n_features)] + ["target"])]
    lines += [",".join([f"{v:.4f}" for v in X[r]] + [str(y[r])]) for r in range(n_rows)]
    return ("\n".join(lines) + "\n").encode()


def warm_imports() -> None:
    """Import the model libraries first, as a worker does before its first job."""
    import catboost  # noqa: F401
    import lightgbm  # noqa: F401
    import nnetsauce  # noqa: F401
    import shap  # noqa: F401
    import xgboost  # noqa: F401


def seed_file(name: str) -> bytes:
    return (DATA / name).read_bytes()


def digits_csv() -> bytes:
    """scikit-learn's digits: 1,797 rows x 64 pixel features, 10 classes."""
    from sklearn.datasets import load_digits

    frame = load_digits(as_frame=True).frame
    return frame.to_csv(index=False).encode()


CUSTOMERS = {"target": "churned", "id_column": "customer_id"}
HOUSES = {"target": "price", "id_column": "house_id"}


JOBS: list[tuple[str, str, bytes, dict[str, object]]] = [
    ("iris lightgbm", "gbdtclassification", seed_file("iris_dataset2.csv"), {}),
    (
        "iris lightgbm perm+shap",
        "gbdtclassification",
        seed_file("iris_dataset2.csv"),
        {"interpretability": "permutation,shap"},
    ),
    (
        "breast cancer ml perm",
        "mlclassification",
        seed_file("breast_cancer_dataset2.csv"),
        {"interpretability": "permutation"},
    ),
    (
        "breast cancer ml shap",
        "mlclassification",
        seed_file("breast_cancer_dataset2.csv"),
        {"interpretability": "shap"},
    ),
    ("boston ml shap", "mlregression", seed_file("boston_dataset2.csv"), {"interpretability": "shap"}),
    (
        "boston gradientboosting shap",
        "gbdtregression",
        seed_file("boston_dataset2.csv"),
        {"model_type": "gradientboosting", "interpretability": "shap"},
    ),
    (
        "breast cancer catboost d8 shap",
        "gbdtclassification",
        seed_file("breast_cancer_dataset2.csv"),
        {"model_type": "catboost", "max_depth": 8, "interpretability": "shap"},
    ),
    (
        "5000x20 xgboost 300 d6 perm+shap",
        "gbdtregression",
        regression_csv(3500, 1500, 20),
        {
            "model_type": "xgboost",
            "n_estimators": 300,
            "max_depth": 6,
            "interpretability": "permutation,shap",
        },
    ),
    (
        "fault tests' slow job (gb 1000 d4)",
        "gbdtclassification",
        binary_csv(),
        {"model_type": "gradientboosting", "n_estimators": 1000, "max_depth": 4},
    ),
    (
        "customers ml perm+shap (categories)",
        "mlclassification",
        seed_file("tables/customers.csv"),
        {**CUSTOMERS, "impute": "median", "interpretability": "permutation,shap"},
    ),
    (
        "customers catboost perm+shap",
        "gbdtclassification",
        seed_file("tables/customers.csv"),
        {**CUSTOMERS, "model_type": "catboost", "interpretability": "permutation,shap"},
    ),
    (
        "houses lightgbm perm+shap",
        "gbdtregression",
        seed_file("tables/houses.csv"),
        {**HOUSES, "interpretability": "permutation,shap"},
    ),
    (
        "houses ml shap (categories)",
        "mlregression",
        seed_file("tables/houses.csv"),
        {**HOUSES, "impute": "median", "interpretability": "shap"},
    ),
    ("digits lightgbm shap", "gbdtclassification", digits_csv(), {"interpretability": "shap"}),
    ("digits ml (default) shap", "mlclassification", digits_csv(), {"interpretability": "shap"}),
    (
        "many classes, 3 estimators",
        "gbdtclassification",
        many_classes_csv(),
        {
            "model_type": "gradientboosting",
            "n_estimators": 3,
            "max_depth": 16,
            "interpretability": "permutation,shap",
        },
    ),
]


LOW, HIGH = 0.8, 2.0  # the band every job of at least 1 s should be in


def estimate(endpoint: str, content: bytes, params: dict[str, object], limits: Limits) -> CostEstimate:
    spec = job_spec(endpoint, PARAMS_BY_ENDPOINT[endpoint].model_validate(params))
    dataset = load_dataset(content, spec.task, spec.seed, limits, roles_of(spec))
    return estimate_cost(spec, shape_of(dataset), limits.max_background_rows)


def measure(spec: JobSpec, content: bytes, limits: Limits) -> dict[str, float]:
    """Measured CPU seconds of each part, as a worker computes them (prepare, then each method whole)."""
    stored = canonical(content, limits)  # the upload as the worker reads it
    started = time.process_time()
    prepared = prepare(stored, spec, limits, n_threads=1)
    parts = {"fit": time.process_time() - started, "permutation": 0.0, "shap": 0.0}
    for method in spec.interpretability:
        started = time.process_time()
        explain(prepared, method, limits)
        parts[method] = time.process_time() - started
    return parts


def main() -> None:
    limits = Limits()
    warm_imports()
    load = os.getloadavg()[0]
    print(f"load average {load:.1f} on {os.cpu_count()} cores (the constants were set on a quiet machine)")
    header = f"{'job':36} {'estimate (fit/perm/shap)':>28} {'measured (fit/perm/shap)':>28} {'ratio':>6}"
    print(header)
    outside = []
    with threadpool_limits(limits=1):
        for label, endpoint, content, params in JOBS:
            spec = job_spec(endpoint, PARAMS_BY_ENDPOINT[endpoint].model_validate(params))
            guess = estimate(endpoint, content, params, limits)
            parts = measure(spec, content, limits)
            measured = sum(parts.values())
            estimated = f"{guess.total:.2f} ({guess.fit:.2f}/{guess.permutation:.2f}/{guess.shap:.2f})"
            seconds = f"{measured:.2f} ({parts['fit']:.2f}/{parts['permutation']:.2f}/{parts['shap']:.2f})"
            ratio = guess.total / measured
            verdict = "" if measured < 1 else ("ok" if LOW <= ratio <= HIGH else "OUTSIDE")
            if verdict == "OUTSIDE":
                outside.append(label)
            print(f"{label:36} {estimated:>28} {seconds:>28} {ratio:6.2f} {verdict}", flush=True)
    print(f"jobs of at least 1 s outside {LOW}x-{HIGH}x: {', '.join(outside) or 'none'}")
    full = {"model_type": "gradientboosting", "n_estimators": 1_000, "max_depth": 16}  # the most accepted
    full["interpretability"] = "permutation,shap"
    seconds = estimate("gbdtclassification", many_classes_csv(), full, limits).total
    print(f"many classes, the most estimators accepted (1,000): estimate {seconds:,.0f} s")


if __name__ == "__main__":
    main()
