"""The Dask path of an xgboost job against the one-process path, on data that fit one process.

Both run the same job (fit, predictions, SHAP values of the test rows) on the same canonical Parquet
file: `shared.ml.pipeline.run` in this process with 2 model threads, and
`shared.ml.distributed.xgboost_dask.run_on_cluster` on a LocalCluster of 2 worker processes of 1 thread
(started once, not timed). Runs alternate, one-process first; the table shows the median of each and
the ratio, and the difference between the two paths' predictions and test R².

    .venv/bin/python benchmarks/dask_xgboost.py [--rows 300000] [--features 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.ml.distributed.xgboost_dask import run_on_cluster
from shared.ml.ingest.upload import ingest
from shared.ml.pipeline import run
from shared.ml.spec import JobSpec, Limits, ModelSpec


def canonical(directory: Path, rows: int, features: int) -> Path:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, features))
    data = pd.DataFrame(X, columns=[f"x{index}" for index in range(features)])
    data["target"] = X[:, 0] * 2 - X[:, 1] * X[:, 2] + np.sin(X[:, 3 % features]) + rng.normal(0, 0.1, rows)
    upload = directory / "upload.parquet"
    data.to_parquet(upload, index=False)
    return ingest(upload, directory / "canonical.parquet", Limits()).path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--partition-mb", type=int, default=16)
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}")

    from distributed import Client, LocalCluster

    model = ModelSpec(task="regression", family="gbdt", model_type="xgboost", n_estimators=100, max_depth=6)
    spec = JobSpec(model=model, interpretability=("shap",))
    limits = Limits()
    with tempfile.TemporaryDirectory() as tmp:
        path = canonical(Path(tmp), args.rows, args.features)
        with (
            LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
            Client(cluster) as client,
        ):
            alone_seconds, dask_seconds = [], []
            largest = mean = 0.0
            scores: tuple[float, float] = (0.0, 0.0)
            for _ in range(args.repeats):
                started = time.perf_counter()
                alone = run(path, spec, limits, n_threads=2)
                alone_seconds.append(time.perf_counter() - started)
                started = time.perf_counter()
                clustered = run_on_cluster(
                    client, path.as_uri(), {}, spec, limits, partition_bytes=args.partition_mb << 20
                )
                dask_seconds.append(time.perf_counter() - started)
                gap = np.abs(np.asarray(alone["y_pred"]) - np.asarray(clustered["y_pred"]))
                largest, mean = max(largest, float(gap.max())), float(gap.mean())
                scores = (alone["Score"]["R² Score"], clustered["Score"]["R² Score"])
    alone_median, dask_median = statistics.median(alone_seconds), statistics.median(dask_seconds)
    print(f"\n{args.rows:,} rows x {args.features} features, 100 trees of depth 6, SHAP of the test rows")
    print("| path | median s | runs (s) |")
    print("|---|---|---|")
    for name, median, runs in (
        ("one process, 2 threads", alone_median, alone_seconds),
        ("Dask, 2 workers x 1 thread", dask_median, dask_seconds),
    ):
        print(f"| {name} | {median:.2f} | {', '.join(f'{seconds:.2f}' for seconds in runs)} |")
    print(f"Dask / one process: {dask_median / alone_median:.2f}x")
    print(f"|prediction difference|: largest {largest:.2e}, mean {mean:.2e}")
    print(f"test R²: one process {scores[0]:.4f}, Dask {scores[1]:.4f}")
    print("(normal features have more distinct values than xgboost's 256 bins: the two sketches differ)")


if __name__ == "__main__":
    main()
