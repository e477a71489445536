"""The tabulated TreeSHAP kernel against the boosters' own TreeSHAP, in one process, same data and model.

For xgboost (`pred_contribs`) and lightgbm (`pred_contrib`), at depths 3 (the service's default) and 6:
100 trees fitted on a synthetic regression table, then the SHAP values of the test rows by the library and
by `shared.ml.explain._tabulated_treeshap`, alternately, with the same number of threads. Prints the
median seconds of each, their ratio, the kernel's one-off tabulation time and the largest difference.

    .venv/bin/python benchmarks/treeshap_inprocess.py [--rows 57000] [--features 24] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import lightgbm  # noqa: E402
import numpy as np  # noqa: E402
import xgboost  # noqa: E402

from benchmarks._data import regression_frame  # noqa: E402
from shared.ml.explain import _tabulated_treeshap as kernel  # noqa: E402


def timed(function: Callable[[], np.ndarray], repeats: int) -> tuple[float, np.ndarray]:
    seconds, found = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        found = function()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), found


def fitted(library: str, depth: int, threads: int, X: np.ndarray, y: np.ndarray):
    """(the library's own TreeSHAP on rows, the kernel's tabulated trees and the seconds to tabulate)."""
    if library == "xgboost":
        booster = (
            xgboost.XGBRegressor(n_estimators=100, max_depth=depth, n_jobs=threads).fit(X, y).get_booster()
        )
        started = time.perf_counter()
        compiled = kernel.compile_xgboost(booster, (0, 0))
        seconds = time.perf_counter() - started
        return (lambda rows: booster.predict(xgboost.DMatrix(rows), pred_contribs=True)), compiled, seconds
    model = lightgbm.LGBMRegressor(
        n_estimators=100, max_depth=depth, num_leaves=2**depth, verbose=-1, n_jobs=threads
    ).fit(X, y)
    started = time.perf_counter()
    compiled = kernel.compile_lightgbm(model.booster_, None)
    seconds = time.perf_counter() - started
    return (lambda rows: model.predict(rows, pred_contrib=True)), compiled, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=57_000, help="explained rows (training rows: 2x)")
    parser.add_argument("--features", type=int, default=24)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    frame = regression_frame(2 * args.rows, args.rows, args.features, seed=2026)
    X = frame.drop(columns=["target", "training_index"]).to_numpy()
    y = frame["target"].to_numpy()
    train = frame["training_index"].to_numpy() == 1
    X_test = X[~train]
    kernel.warm_up()
    print(f"{args.rows:,} explained rows x {args.features} features, 100 trees, {args.threads} thread(s)")
    for library in ("xgboost", "lightgbm"):
        for depth in (3, 6):
            native, compiled, tabulating = fitted(library, depth, args.threads, X[train], y[train])
            assert compiled is not None
            theirs_seconds, theirs = timed(partial(native, X_test), args.repeats)
            ours_seconds, ours = timed(
                partial(kernel.contributions, compiled, X_test, args.threads), args.repeats
            )
            difference = np.abs(ours[:, 0, :-1] - theirs[:, :-1]).max()
            print(
                f"  {library:<8} depth {depth}: library {theirs_seconds:6.3f} s | tabulated "
                f"{ours_seconds:6.3f} s (+ {tabulating:.3f} s to tabulate) | "
                f"{theirs_seconds / ours_seconds:5.1f}x | max |difference| {difference:.1e} "
                f"(mean |value| {np.abs(theirs[:, :-1]).mean():.3f})",
                flush=True,
            )


if __name__ == "__main__":
    main()
