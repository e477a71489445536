"""Synthetic regression CSVs for the benchmarks, generated from a seed and cached on disk.

The target mixes linear terms, a few interactions and noise, so boosted trees of depth 3 and a linear
model both have something to learn. Values are written with 5 significant digits: 120,000 rows x 101
columns then stay near 100 MB, the default upload limit.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

CACHE = Path(tempfile.gettempdir()) / "fitexplain_bench_data"


def regression_csv(n_train: int, n_test: int, n_features: int, seed: int = 2026) -> bytes:
    """CSV bytes: x0..x{p-1}, target, training_index (1 for the first n_train rows, 0 after)."""
    path = CACHE / f"regression_{n_train}_{n_test}_{n_features}_{seed}.csv"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        frame = regression_frame(n_train, n_test, n_features, seed)
        partial = path.with_suffix(f".{seed}.tmp")
        frame.to_csv(partial, index=False, float_format="%.5g")
        partial.replace(path)  # another run never sees a half-written file
    return path.read_bytes()


def regression_frame(n_train: int, n_test: int, n_features: int, seed: int) -> pd.DataFrame:
    """The table behind `regression_csv`, every random number drawn from Generator(seed)."""
    rng = np.random.default_rng(seed)
    n_rows = n_train + n_test
    X = rng.standard_normal((n_rows, n_features))
    weights = rng.normal(0.0, 1.0, n_features) / np.sqrt(np.arange(1, n_features + 1))
    y = X @ weights + rng.normal(0.0, 0.5, n_rows)
    if n_features >= 4:
        y += 0.8 * X[:, 0] * X[:, 1] - 0.5 * np.abs(X[:, 2]) * X[:, 3]
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(n_features)])
    frame["target"] = y
    frame["training_index"] = np.r_[np.ones(n_train, dtype=np.int64), np.zeros(n_test, dtype=np.int64)]
    return frame
