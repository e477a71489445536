"""Scoring and explaining many new rows with a kept xgboost model: a predict job against a plain script
doing the same work, in the same run.

The data: a regression table of `--features` numeric features; the model is fitted on `--train-rows`
rows as /gbdtregression?model_type=xgboost fits it (100 trees, depth 3, the job's seed). The new rows
(`--rows`, 1,000,000 by default; a comma-separated list runs each size in turn) are a Parquet file.

The baseline, for every mode: a plain script that reads the same Parquet file, loads the native model
(xgboost UBJSON), calls `Booster.predict` and `pred_contribs` with the worker's thread count
(`--threads`, FITEXPLAIN_MODEL_THREADS), and writes the predictions and contributions as Parquet.

In-process (default): the worker's phases in this process, as `worker.tasks.compute_predict` runs them:
the upload converted to the canonical file (the API's part, shown apart), then load (the kept model's
bytes verified and unpickled), read, predict, explain and write (the result's Parquet form, batch by
batch: `shared.results.predict_table`), and store (the gzip JSON a result of fewer than 10,000 rows also
keeps).

`--service`: the real stack (`benchmarks/_stack.py`: Postgres, Redis, one worker process, the API), its
background loops at the service's default intervals. The model is fitted through the service
(`/gbdtregression?model_type=xgboost`) and its native file downloaded for the baseline; a warm-up predict
of 1,000 rows runs first. Then for each size: the baseline, and the new rows' Parquet file submitted to
`/jobs/{id}/predict?interpretability=shap`, waited for (`GET /jobs/{id}?wait=60`) and downloaded
`?format=parquet` to a file. Printed: the worker's phases (its log line "job ... phases:"), submit ->
downloaded, the baseline's time, both ratios, the API process's RSS before the submit and its peaks
(psutil, sampled every 20 ms) while the upload is received and from the 202 to the end of the download,
and the largest differences between the downloaded predictions and SHAP values and the baseline's.
"Flat" API memory: the second peak does not grow with the result's rows (run `--rows 100000,1000000`).

Limits raised for the service's stack, because their defaults protect a shared service (each is
printed): FITEXPLAIN_MAX_JOB_SECONDS (a 1M-row predict with SHAP is estimated at about 72 s of the 180 s
budget; raised to keep the benchmark's larger sizes in), FITEXPLAIN_MAX_STORAGE_BYTES_PER_USER (the
upload and the result of 1M rows x 50 features pass the 1 GB quota), FITEXPLAIN_MAX_UPLOAD_BYTES and
FITEXPLAIN_MAX_DECOMPRESSED_BYTES (a 1M x 50 Parquet file is about 400 MB) and
FITEXPLAIN_MAX_PREDICT_EXPLAIN_ROWS (1,000,000: any larger `--rows`).

Acceptance: the worker's phases <= 1.5x the baseline; submit -> result downloaded <= 2.5x the baseline.
On a machine shared with other work the seconds are noisy: compare the ratios, and note the load average
printed beside them.

    .venv/bin/python benchmarks/predict_rows.py --rows 100000                       # in-process
    .venv/bin/python benchmarks/predict_rows.py --service --rows 100000             # through the service
    .venv/bin/python benchmarks/predict_rows.py --service --rows 100000,1000000     # and 1M rows
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import orjson  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from isal import igzip  # noqa: E402

from shared.ml.ingest.upload import ingest  # noqa: E402
from shared.ml.model import codec  # noqa: E402
from shared.ml.model.kept import kept_from  # noqa: E402
from shared.ml.model.predict.options import PredictOptions  # noqa: E402
from shared.ml.model.predict.scoring import read_batches  # noqa: E402
from shared.ml.phases import Phases  # noqa: E402
from shared.ml.pipeline import prepare  # noqa: E402
from shared.ml.spec import JobSpec, Limits, ModelSpec  # noqa: E402
from shared.results.predict_table import score_to_table  # noqa: E402

if TYPE_CHECKING:
    from tests.stack import Client, Stack

SPEC = JobSpec(model=ModelSpec(task="regression", family="gbdt", model_type="xgboost"))
LIMITS = Limits(max_rows=20_000_000, max_shap_floats=2_000_000_000, max_predict_explain_rows=10_000_000)
JSON_BELOW_ROWS = 10_000  # FITEXPLAIN_RESULT_PARQUET_MIN_ROWS' default
SERVICE_LIMITS = {
    "FITEXPLAIN_MAX_JOB_SECONDS": "3600",
    "FITEXPLAIN_MAX_STORAGE_BYTES_PER_USER": "50000000000",
    "FITEXPLAIN_MAX_UPLOAD_BYTES": "4000000000",
    "FITEXPLAIN_MAX_DECOMPRESSED_BYTES": "8000000000",
    "FITEXPLAIN_MAX_PREDICT_EXPLAIN_ROWS": "10000000",
}
RSS_SAMPLE_SECONDS = 0.02
MB = 1e6


def table(n_rows: int, n_features: int, seed: int, with_target: bool) -> pa.Table:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, n_features))
    columns = {f"x{j}": X[:, j] for j in range(n_features)}
    if with_target:
        columns["target"] = X[:, :5] @ np.arange(1, 6) + np.sin(X[:, 5]) + rng.normal(scale=0.1, size=n_rows)
    return pa.table(columns)


def baseline(model_path: Path, data: Path, out: Path, threads: int) -> Phases:
    """The plain script: read the Parquet file, load the native model, predict, pred_contribs, write."""
    import xgboost

    phases = Phases()
    with phases.timed("read"):
        X = pq.read_table(data).to_pandas().to_numpy(dtype=np.float64)
    with phases.timed("load"):
        booster = xgboost.Booster(model_file=str(model_path))
        booster.set_param({"nthread": threads})
    with phases.timed("predict"):
        matrix = xgboost.DMatrix(X, nthread=threads)
        y_pred = booster.predict(matrix)
    with phases.timed("explain"):
        contributions = booster.predict(matrix, pred_contribs=True)
    with phases.timed("write"):
        columns = {"y_pred": y_pred, "base_value": contributions[:, -1]}
        columns.update({f"shap_x{j}": contributions[:, j] for j in range(X.shape[1])})
        pq.write_table(pa.table(columns), out, compression="zstd")
    return phases


def total(phases: Phases) -> float:
    return sum(phases.seconds.values())


# --- in this process ------------------------------------------------------------------------------------


def worker_phases(model_body: bytes, sha256: str, canonical: Path, out: Path, threads: int) -> Phases:
    """A predict job's phases as `worker.tasks.compute_predict` runs them, without the job store."""
    phases = Phases()
    with phases.timed("load"):
        kept = codec.load(model_body, sha256)
        kept.model.set_params(n_jobs=threads)
    n_rows = pq.read_metadata(canonical).num_rows
    result = score_to_table(
        kept,
        read_batches(canonical),
        PredictOptions(interpretability="shap", top_n=3),
        out,
        keep_rows=n_rows < JSON_BELOW_ROWS,
        phases=phases,
    )
    with phases.timed("store"):
        if result is not None:
            igzip.compress(orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY), 1)
    return phases


def in_process(args: argparse.Namespace, n_rows: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        pq.write_table(table(args.train_rows, args.features, 1, True), work / "fit.parquet")
        fit_source = ingest(work / "fit.parquet", work / "fit.canonical.parquet", LIMITS).path
        prepared = prepare(fit_source, SPEC, LIMITS, n_threads=args.threads)
        kept = kept_from(prepared, LIMITS)
        body = codec.dump(kept)
        sha256 = codec.sha256_of(body)
        kept.model.save_model(work / "model.ubj")
        pq.write_table(table(n_rows, args.features, 2, False), work / "new.parquet")
        started = time.perf_counter()
        canonical = ingest(work / "new.parquet", work / "new.canonical.parquet", LIMITS).path
        converted = time.perf_counter() - started

        plain = baseline(work / "model.ubj", work / "new.parquet", work / "plain.parquet", args.threads)
        phases = worker_phases(body, sha256, canonical, work / "result.parquet", args.threads)
        explained = pq.read_table(work / "result.parquet", columns=["explained"]).column(0)
        n_explained = int(pa.compute.sum(explained).as_py())

    print(f"{n_rows:,} rows x {args.features} features, xgboost 100 trees depth 3, {args.threads} thread(s)")
    print(f"upload converted to the canonical file (the API's part): {converted:.2f} s")
    print(f"worker:   {phases}  total={total(phases):.2f}s")
    print(f"baseline: {plain}  total={total(plain):.2f}s")
    print(f"ratio worker / baseline: {total(phases) / total(plain):.2f} (acceptance <= 1.5)")
    print(f"explained rows: {n_explained:,}")


# --- through the service --------------------------------------------------------------------------------


class RssSampler:
    """The API process's resident memory (with its children's), sampled every RSS_SAMPLE_SECONDS."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.process = psutil.Process(pid)
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        found = self.process.memory_info().rss
        for child in self.process.children(recursive=True):
            with contextlib.suppress(Exception):  # it ended meanwhile
                found += child.memory_info().rss
        return int(found)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), self.rss()))
            self._stop.wait(RSS_SAMPLE_SECONDS)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def peak(self, start: float, stop: float) -> int:
        return max((rss for at, rss in self.samples if start <= at <= stop), default=0)


@dataclass
class ServiceRun:
    rows: int
    upload: float  # seconds until the 202
    done: float  # until the job's row says succeeded
    downloaded: float  # submit -> the Parquet form written to a file
    worker: dict[str, float] = field(default_factory=dict)
    rss_before: int = 0
    rss_upload: int = 0
    rss_result: int = 0
    downloaded_bytes: int = 0


def service_main(args: argparse.Namespace, sizes: list[int]) -> None:
    from benchmarks._stack import SERVICE_INTERVALS, running_stack

    env = {
        "FITEXPLAIN_MODEL_THREADS": str(args.threads),
        "OMP_NUM_THREADS": str(args.threads),
        **SERVICE_INTERVALS,
        **SERVICE_LIMITS,
    }
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    print(f"limits raised for this benchmark's stack: {SERVICE_LIMITS}", flush=True)
    print(f"FITEXPLAIN_MODEL_THREADS={args.threads} (the baseline's nthread), one worker", flush=True)
    summary = []
    with tempfile.TemporaryDirectory() as folder, running_stack(1, extra_env=env) as (stack, client):
        work = Path(folder)
        fit_id, model_path = fit_through_service(client, work, args)
        warm = work / "warm.parquet"
        pq.write_table(table(1_000, args.features, 3, False), warm)
        predict_through_service(stack, client, fit_id, warm, work / "warm-result.parquet")
        for n_rows in sizes:
            data = work / "new.parquet"
            pq.write_table(table(n_rows, args.features, 2, False), data)
            load = " ".join(f"{x:.2f}" for x in os.getloadavg())
            megabytes = data.stat().st_size / MB
            print(
                f"\n== {n_rows:,} rows x {args.features} features ({megabytes:.0f} MB Parquet), "
                f"xgboost 100 trees depth 3, {args.threads} thread(s); load average {load}",
                flush=True,
            )
            plain = baseline(model_path, data, work / "plain.parquet", args.threads)
            print(f"   baseline:       {plain}  total={total(plain):.2f}s", flush=True)
            run = predict_through_service(stack, client, fit_id, data, work / "result.parquet")
            summary.append(report(run, plain, work))
            data.unlink()
    print("\nrows        worker/baseline  submit->downloaded/baseline  API peak after the 202 - before")
    for n_rows, worker_ratio, e2e_ratio, growth in summary:
        print(f"{n_rows:>10,}  {worker_ratio:15.2f}  {e2e_ratio:27.2f}  {growth / MB:+.0f} MB")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def fit_through_service(client: Client, work: Path, args: argparse.Namespace) -> tuple[str, Path]:
    """The kept model: fitted by the service on a small training table, its native file downloaded."""
    fit = work / "fit.parquet"
    pq.write_table(table(args.train_rows, args.features, 1, True), fit)
    started = time.perf_counter()
    with fit.open("rb") as upload:
        response = client.http.post(
            "/gbdtregression",
            params={"model_type": "xgboost", "interpretability": "none"},
            files={"file": ("fit.parquet", upload, "application/vnd.apache.parquet")},
            timeout=600,
        )
    if response.status_code != 202:
        raise RuntimeError(f"fit: HTTP {response.status_code} {response.text[:500]}")
    fit_id = response.json()["id"]
    finished(client, fit_id)
    model = client.http.get(f"/jobs/{fit_id}/model/download", params={"format": "native"}, timeout=120)
    model.raise_for_status()
    model_path = work / "model.ubj"
    model_path.write_bytes(model.content)
    print(
        f"fitted through the service: job {fit_id}, {args.train_rows:,} rows, "
        f"{time.perf_counter() - started:.1f} s; native model {len(model.content):,} bytes",
        flush=True,
    )
    return fit_id, model_path


def finished(client: Client, job_id: str) -> dict[str, object]:
    """The job once it has finished (long polls); raise unless it succeeded."""
    while True:
        job = client.http.get(f"/jobs/{job_id}", params={"wait": 60}, timeout=90).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
    if job["status"] != "succeeded":
        raise RuntimeError(f"job {job_id} {job['status']}: {job.get('error')}")
    return dict(job)


def predict_through_service(stack: Stack, client: Client, fit_id: str, data: Path, out: Path) -> ServiceRun:
    """Submit the rows, wait, download `?format=parquet` to `out`; the API's RSS sampled throughout."""
    from benchmarks.large_data import worker_phases as logged_phases

    assert stack.api is not None
    n_rows = pq.read_metadata(data).num_rows
    with RssSampler(stack.api.pid) as rss:
        time.sleep(0.2)  # a few samples before the submit
        before = rss.rss()
        started = time.perf_counter()
        with data.open("rb") as upload:
            response = client.http.post(
                f"/jobs/{fit_id}/predict",
                params={"interpretability": "shap"},
                files={"file": (data.name, upload, "application/vnd.apache.parquet")},
                timeout=1200,
            )
        accepted = time.perf_counter()
        if response.status_code != 202:
            raise RuntimeError(f"predict: HTTP {response.status_code} {response.text[:500]}")
        job_id = response.json()["id"]
        finished(client, job_id)
        done = time.perf_counter()
        size = 0
        path = f"/jobs/{job_id}/result"
        with (
            client.http.stream("GET", path, params={"format": "parquet"}, timeout=1200) as answer,
            out.open("wb") as file,
        ):
            answer.raise_for_status()
            for piece in answer.iter_bytes(1 << 20):
                file.write(piece)
                size += len(piece)
        ended = time.perf_counter()
        time.sleep(0.1)
    if pq.read_metadata(out).num_rows != n_rows:
        raise RuntimeError(f"the downloaded result has {pq.read_metadata(out).num_rows} rows, not {n_rows}")
    run = ServiceRun(
        rows=n_rows,
        upload=accepted - started,
        done=done - started,
        downloaded=ended - started,
        worker=logged_phases(stack, job_id),
        rss_before=before,
        rss_upload=rss.peak(started, accepted),
        rss_result=rss.peak(accepted, ended),
        downloaded_bytes=size,
    )
    client.http.delete(f"/jobs/{job_id}").raise_for_status()  # the next size is charged afresh
    return run


def report(run: ServiceRun, plain: Phases, work: Path) -> tuple[int, float, float, int]:
    worker = {key.removeprefix("worker_"): value for key, value in run.worker.items()}
    worker_total = sum(worker.values())
    shown = " ".join(f"{key}={value:.3f}s" for key, value in worker.items())
    print(f"   worker phases:  {shown}  total={worker_total:.2f}s")
    print(
        f"   service:        202 after {run.upload:.2f} s, succeeded after {run.done:.2f} s, "
        f"downloaded ({run.downloaded_bytes / MB:.0f} MB Parquet) after {run.downloaded:.2f} s"
    )
    worker_ratio = worker_total / total(plain)
    e2e_ratio = run.downloaded / total(plain)
    print(f"   worker phases / baseline      = {worker_ratio:.2f} (acceptance <= 1.5)")
    print(f"   submit -> downloaded / baseline = {e2e_ratio:.2f} (acceptance <= 2.5)")
    print(
        f"   API RSS: {run.rss_before / MB:.0f} MB before the submit; peak {run.rss_upload / MB:.0f} MB "
        f"({(run.rss_upload - run.rss_before) / MB:+.0f}) while the upload was received and converted; "
        f"peak {run.rss_result / MB:.0f} MB ({(run.rss_result - run.rss_before) / MB:+.0f}) from the 202 "
        "to the end of the download"
    )
    ours = pq.read_table(work / "result.parquet")
    theirs = pq.read_table(work / "plain.parquet")
    y_diff = np.abs(ours.column("y_pred").to_numpy() - theirs.column("y_pred").to_numpy()).max()
    names = [name for name in theirs.column_names if name.startswith("shap_")]
    shap_diff = max(
        float(np.abs(ours.column(name).to_numpy() - theirs.column(name).to_numpy()).max()) for name in names
    )
    explained = int(pa.compute.sum(ours.column("explained")).as_py())
    print(
        f"   check: {explained:,} rows explained; largest difference to the baseline: "
        f"y_pred {y_diff:.2g}, SHAP {shap_diff:.2g} (xgboost's float32 sums)"
    )
    return run.rows, worker_ratio, e2e_ratio, run.rss_result - run.rss_before


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", default="1000000", help="new rows; a comma-separated list for several")
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=1, help="FITEXPLAIN_MODEL_THREADS and the baseline's")
    parser.add_argument("--service", action="store_true", help="through the real stack (see above)")
    args = parser.parse_args()
    sizes = [int(size.replace("_", "")) for size in args.rows.split(",")]
    if args.service:
        service_main(args, sizes)
        return
    for n_rows in sizes:
        in_process(args, n_rows)


if __name__ == "__main__":
    main()
