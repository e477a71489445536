"""The seed's eight requests through the real service, against the in-process code a user would write.

Starts a real stack (fresh Postgres database, Redis queue, `fitexplain api`, N `fitexplain worker`
processes), then for each request (breast cancer on /mlclassification and /gbdtclassification, boston on
/mlregression and /gbdtregression, each with interpretability=permutation and =shap, defaults otherwise):
- service time: submit -> poll /jobs/{id} -> GET result, over HTTP (the worker loads, fits and explains);
- baseline time: fit + explanation in this process on the same data and the same model (built with
  shared.ml.estimators.build_model from the endpoint's defaults, data from
  shared.ml.ingest.upload.load_dataset):
  sklearn.inspection.permutation_importance(model, X_test, y_test, n_repeats=10, random_state=seed);
  shap.Explainer(model.predict_proba or model.predict, X_train)(X_test) for /ml*, shap.TreeExplainer
  for /gbdt*.
Baseline and service alternate, request by request (which goes first alternates too), because other
processes share the machine and the load drifts. Prints a table; --json writes the rows.
Run: .venv/bin/python benchmarks/seed_requests.py [--workers N] [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from _shap_reference import Reference, permutation_reference, relative_mae
from _stack import DATA, TimedRequest, running_stack, timed_request

from api.endpoint_params import PARAMS_BY_ENDPOINT, job_spec
from shared.ml.estimators import build_model
from shared.ml.ingest.upload import load_dataset
from shared.ml.spec import JobSpec, Limits
from tests.contract import explanation

QUICK_ROWS = 20  # --quick: rows shap.Explainer explains on the nnetsauce classifier, then scaled
REFERENCE_PAIRS = 64  # per (test row, training row): the reference's own error is about 0.005 on request 3
FIRST_ROWS = 5  # the reference table also reports the service's error on these first rows alone


@dataclass(frozen=True)
class Case:
    endpoint: str
    csv_name: str
    method: str

    @property
    def label(self) -> str:
        return f"{self.csv_name.split('_dataset')[0]} /{self.endpoint} {self.method}"


CASES = [
    Case(endpoint, csv_name, method)
    for endpoint, csv_name in (
        ("mlclassification", "breast_cancer_dataset2.csv"),
        ("gbdtclassification", "breast_cancer_dataset2.csv"),
        ("mlregression", "boston_dataset2.csv"),
        ("gbdtregression", "boston_dataset2.csv"),
    )
    for method in ("permutation", "shap")
]


@dataclass
class Baseline:
    seconds: float
    explainer: str
    output: np.ndarray  # importances_mean, or SHAP values for the rows explained
    rows_explained: int
    scaled: bool  # seconds extrapolated from `rows_explained` rows to all test rows
    model: Any = None  # the fitted model and its data, kept for the reference computation
    data: Any = None


@dataclass
class Row:
    request: str
    service_seconds: float
    worker_seconds: float | None
    baseline_seconds: float
    ratio: float
    service_explainer: str
    baseline_explainer: str
    baseline_scaled: bool
    comparison: str  # what `difference` measures
    difference: float | None
    reference: str = ""  # what the two errors below are measured against ("" when not computed)
    reference_error: float | None = None  # the reference's own expected error, from its standard errors
    service_error: float | None = None
    baseline_error: float | None = None
    service_error_first_rows: float | None = None  # on the first FIRST_ROWS rows, the earlier runs' figure


def spec_for(case: Case) -> JobSpec:
    return job_spec(case.endpoint, PARAMS_BY_ENDPOINT[case.endpoint](interpretability=case.method))


def run_baseline(case: Case, quick: bool) -> Baseline:
    """Fit + explanation in this process, timed; the data loading and model building are not timed."""
    import shap
    from sklearn.inspection import permutation_importance

    spec = spec_for(case)
    data = load_dataset((DATA / case.csv_name).read_bytes(), spec.task, spec.seed, Limits())
    model = build_model(spec.model)
    n_test = data.X_test.shape[0]
    rows = data.X_test
    started = time.perf_counter()
    model.fit(data.X_train, data.y_train)
    fitted = time.perf_counter()
    if case.method == "permutation":
        # scoring spelled out: nnetsauce's CustomRegressor.score is the RMSE, not R² (see docs/performance.md)
        scoring = "accuracy" if spec.task == "classification" else "r2"
        found = permutation_importance(
            model, data.X_test, data.y_test, scoring=scoring, n_repeats=10, random_state=spec.seed
        )
        name, output = "sklearn permutation_importance", found.importances_mean
    elif spec.model.family == "gbdt":
        explainer = shap.TreeExplainer(model)
        name, output = "shap.TreeExplainer", np.asarray(explainer(rows).values)
    else:
        if quick and spec.task == "classification":
            rows = data.X_test[:QUICK_ROWS]
        predict = model.predict_proba if spec.task == "classification" else model.predict
        explainer = shap.Explainer(predict, data.X_train)
        name = f"shap.Explainer ({type(explainer).__name__})"
        output = np.asarray(explainer(rows, silent=True).values)
    finished = time.perf_counter()
    explain_seconds = (finished - fitted) * n_test / rows.shape[0]
    seconds = fitted - started + explain_seconds
    return Baseline(seconds, name, output, rows.shape[0], rows.shape[0] < n_test, model, data)


def service_explainer(case: Case, result: dict[str, Any]) -> str:
    found = explanation(result, case.method)
    if case.method == "permutation":
        return f"batched permutation ({found.get('n_predict_calls', '?')} predict calls)"
    exact = "exact" if found.get("exact") else "approx."
    estimate = found.get("error_estimate")
    error = f", err.est. {estimate:.3g}" if isinstance(estimate, float) else ""
    return f"{found.get('explainer')} ({exact}, {found.get('output_space')}{error})"


def compare(case: Case, result: dict[str, Any], baseline: Baseline) -> tuple[str, float | None]:
    """Permutation: largest |difference| of importances_mean. SHAP: relative MAE vs the baseline's values."""
    found = explanation(result, case.method)
    if case.method == "permutation":
        ours = np.asarray(found["importances_mean"], dtype=float)
        return "max |diff| importances_mean", float(np.abs(ours - baseline.output).max())
    ours = np.asarray(found["values"], dtype=float)[: baseline.rows_explained]
    theirs = baseline.output
    if theirs.ndim == 2 and ours.ndim == 3:  # TreeExplainer gives a binary booster's class-1 margin only
        ours = ours[..., -1]
    if ours.shape != theirs.shape:
        return f"shapes differ {ours.shape} vs {theirs.shape}", None
    return f"SHAP rel. MAE vs baseline on {baseline.rows_explained} rows", relative_mae(ours, theirs)


def reference_values(case: Case, baseline: Baseline, n_rows: int) -> tuple[str, Reference]:
    """High-precision SHAP values of the /ml* model on the first test rows (not timed).

    Regression: exact enumeration (2**13 coalitions) against the whole training set. Classification:
    REFERENCE_PAIRS antithetic permutation pairs for each (test row, training row), drawn independently
    (benchmarks/_shap_reference.py), with the standard error that the table prints as its own error.
    """
    from shared.ml.explain.agnostic import explain_agnostic

    model, data = baseline.model, baseline.data
    rows = data.X_test[:n_rows]
    if spec_for(case).task == "regression":
        exact = explain_agnostic(model.predict, data.X_train, rows, random_state=0, exact_up_to=rows.shape[1])
        values = np.asarray(exact["values"])
        return f"exact SHAP, full training background, first {n_rows} rows", Reference(
            values, np.zeros_like(values)
        )
    reference = permutation_reference(model.predict_proba, data.X_train, rows, REFERENCE_PAIRS, seed=999)
    label = f"{REFERENCE_PAIRS} antithetic pairs per training row, whole training set, first {n_rows} rows"
    return label, reference


def measure(case: Case, client: Any, quick: bool, service_first: bool, reference_rows: int) -> Row:
    service: TimedRequest | None = None
    if service_first:
        service = timed_request(client, case.endpoint, case.csv_name, {"interpretability": case.method})
    baseline = run_baseline(case, quick)
    if service is None:
        service = timed_request(client, case.endpoint, case.csv_name, {"interpretability": case.method})
    comparison, difference = compare(case, service.result, baseline)
    row = Row(
        request=case.label,
        service_seconds=service.seconds,
        worker_seconds=service.worker_seconds,
        baseline_seconds=baseline.seconds,
        ratio=baseline.seconds / service.seconds,
        service_explainer=service_explainer(case, service.result),
        baseline_explainer=baseline.explainer,
        baseline_scaled=baseline.scaled,
        comparison=comparison,
        difference=difference,
    )
    if case.method == "shap" and spec_for(case).model.family == "ml" and reference_rows > 0:
        n_rows = min(reference_rows, baseline.rows_explained)
        row.reference, reference = reference_values(case, baseline, n_rows)
        ours = np.asarray(explanation(service.result, "shap")["values"], dtype=float)[:n_rows]
        row.reference_error = reference.relative_error()
        row.service_error = relative_mae(ours, reference.values)
        row.baseline_error = relative_mae(baseline.output[:n_rows], reference.values)
        if n_rows > FIRST_ROWS:
            row.service_error_first_rows = relative_mae(ours[:FIRST_ROWS], reference.values[:FIRST_ROWS])
    return row


def median_row(rows: list[Row]) -> Row:
    """The run with the median service time, its times replaced by the medians over the repeats."""
    chosen = sorted(rows, key=lambda row: row.service_seconds)[len(rows) // 2]
    service = statistics.median(row.service_seconds for row in rows)
    baseline = statistics.median(row.baseline_seconds for row in rows)
    chosen.service_seconds, chosen.baseline_seconds, chosen.ratio = service, baseline, baseline / service
    return chosen


def warm_up(client: Any, n_workers: int) -> None:
    """Load the heavy libraries once on each side, so that neither time includes a cold import."""
    import lightgbm  # noqa: F401
    import nnetsauce  # noqa: F401
    import shap  # noqa: F401

    jobs = []
    for _ in range(n_workers):
        for endpoint, csv_name in {(case.endpoint, case.csv_name) for case in CASES}:
            response = client.submit(endpoint, csv_name, interpretability="none")
            response.raise_for_status()
            jobs.append(response.json()["id"])
    for job_id in jobs:
        client.wait(job_id)


@dataclass
class Batch:
    seconds: float  # submit of the first to result of the last, as the client saw it
    worker_seconds: float  # the jobs' run times (started_at -> finished_at) added up


def all_at_once(client: Any, cases: list[Case]) -> Batch:
    """The requests submitted together: what extra workers buy."""
    from _stack import _gap

    started = time.perf_counter()
    ids = []
    for case in cases:
        response = client.submit(case.endpoint, case.csv_name, interpretability=case.method)
        response.raise_for_status()
        ids.append(response.json()["id"])
    worker_seconds = 0.0
    for job_id in ids:
        job = client.wait(job_id, timeout=900)
        if job["status"] != "succeeded":
            raise RuntimeError(f"job {job_id} {job['status']}: {job.get('error')}")
        client.result(job_id)
        worker_seconds += _gap(job, "started_at", "finished_at") or 0.0
    return Batch(time.perf_counter() - started, worker_seconds)


def format_table(rows: list[Row], batch: Batch | None) -> str:
    lines = [
        "| request | service s | worker s | baseline s | ratio base/svc | service explainer | baseline "
        "explainer | check |",
        "|---|---:|---:|---:|---:|---|---|---|",
    ]
    for row in rows:
        worker = f"{row.worker_seconds:.2f}" if row.worker_seconds is not None else "-"
        scaled = " (scaled)" if row.baseline_scaled else ""
        check = f"{row.comparison}: {row.difference:.3g}" if row.difference is not None else row.comparison
        lines.append(
            f"| {row.request} | {row.service_seconds:.2f} | {worker} | {row.baseline_seconds:.2f}{scaled} | "
            f"{row.ratio:.2f} | {row.service_explainer} | {row.baseline_explainer} | {check} |"
        )
    total_service = sum(row.service_seconds for row in rows)
    total_worker = sum(row.worker_seconds or 0.0 for row in rows)
    total_baseline = sum(row.baseline_seconds for row in rows)
    lines.append(
        f"| all, one after another | {total_service:.2f} | {total_worker:.2f} | {total_baseline:.2f} | "
        f"{total_baseline / total_service:.2f} | | | |"
    )
    if batch is not None:
        lines.append(
            f"| all submitted at once | {batch.seconds:.2f} | {batch.worker_seconds:.2f} | "
            f"{total_baseline:.2f} | {total_baseline / batch.seconds:.2f} | | | |"
        )
    referenced = [row for row in rows if row.reference]
    if referenced:
        lines += [
            "",
            f"| request | reference | reference's own error (est.) | service rel. MAE | service, first "
            f"{FIRST_ROWS} rows | baseline rel. MAE |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for row in referenced:
            first = f"{row.service_error_first_rows:.3g}" if row.service_error_first_rows is not None else "-"
            lines.append(
                f"| {row.request} | {row.reference} | {row.reference_error:.2g} | {row.service_error:.3g} | "
                f"{first} | {row.baseline_error:.3g} |"
            )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_start": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=1, help="worker processes (concurrency 1 each)")
    parser.add_argument(
        "--quick", action="store_true", help=f"shap.Explainer classifier on {QUICK_ROWS} rows"
    )
    parser.add_argument("--repeats", type=int, default=1, help="runs per request; medians are reported")
    parser.add_argument(
        "--reference-rows", type=int, default=20, help="rows of high-precision SHAP for /ml* (0: skip)"
    )
    parser.add_argument("--no-batch", action="store_true", help="skip the all-eight-at-once run")
    parser.add_argument("--json", metavar="OUT", help="write the rows and the machine description here")
    parser.add_argument(
        "--only",
        metavar="TEXT",
        help="only the requests whose label contains TEXT ('mlclassification shap')",
    )
    args = parser.parse_args()
    cases = [case for case in CASES if args.only is None or args.only in case.label]
    if not cases:
        parser.error(f"--only {args.only!r} matches none of: {', '.join(case.label for case in CASES)}")
    warnings.filterwarnings("ignore")  # nnetsauce and lightgbm warnings would drown the table
    meta = machine() | {
        "workers": args.workers,
        "quick": args.quick,
        "repeats": args.repeats,
        "only": args.only,
    }
    rows: list[Row] = []
    batch = None
    with running_stack(args.workers) as (_stack, client):
        warm_up(client, args.workers)
        for index, case in enumerate(cases):
            runs = [
                measure(case, client, args.quick, (index + k) % 2 == 1, args.reference_rows)
                for k in range(args.repeats)
            ]
            rows.append(median_row(runs))
            print(
                f"{case.label}: service {rows[-1].service_seconds:.2f} s, baseline "
                f"{rows[-1].baseline_seconds:.2f} s",
                file=sys.stderr,
                flush=True,
            )
        if not args.no_batch:
            batch = all_at_once(client, cases)
    meta["load_average_end"] = os.getloadavg()
    print(
        f"{meta['date']}, {meta['cpus']} CPUs, {meta['platform']}, workers {args.workers}, "
        f"quick {args.quick}, repeats {args.repeats}, load average {meta['load_average_start'][0]:.1f} -> "
        f"{meta['load_average_end'][0]:.1f}"
    )
    print(format_table(rows, batch))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(
                {
                    "machine": meta,
                    "rows": [asdict(row) for row in rows],
                    "batch": asdict(batch) if batch else None,
                },
                out,
                indent=2,
            )


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted (the stack was stopped and its database dropped)", file=sys.stderr)
        sys.exit(130)
