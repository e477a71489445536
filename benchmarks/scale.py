"""Does a second worker make one large explanation faster? 1 worker vs 2, through the real service.

Two cases, each run on a fresh stack first with one worker, then with a second worker started:
  xgb: /gbdtregression?model_type=xgboost&interpretability=shap, 100,000 test rows x 100 features
       (exact TreeSHAP: cheap per row, so the fixed costs around it decide the speed-up);
  ml:  /mlregression (nnetsauce ElasticNet) interpretability=shap, 5,000 test rows x 20 features
       (model-agnostic sampling: expensive per row, the case fan-out is for).
Every worker runs with --concurrency 1 and FITEXPLAIN_MODEL_THREADS=1 plus OMP/BLAS threads = 1, so two
workers use the two cores without oversubscribing them. Fan-out is sized so each job has --chunks chunks
(chunk rows = test rows / chunks, fan-out from 2 chunks' rows): for xgb at full size these are the
service defaults (20,000 and 10,000).

The job's time is split into phases: the upload (POST, which also parses and stores the CSV), the queue
wait, load+fit (until its job_chunks rows appear, polled every 0.1 s), the explanation (until the last
chunk is stored: each chunk's last heartbeat_at), the merge and JSON encoding (until finished_at), gzip
and the database write (until the job reads `succeeded`), and the result's download and decoding. The
helper worker's log says how many chunks its run_chunk tasks computed and how long they took (refit
included). The SHAP values' digest must be the same with 1 and 2 workers.

    .venv/bin/python benchmarks/scale.py --quick          # 10x smaller, a couple of minutes
    .venv/bin/python benchmarks/scale.py                  # full size
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make `tests` and `benchmarks` importable
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import psycopg  # noqa: E402

from benchmarks._data import regression_csv  # noqa: E402
from benchmarks._stack import running_stack  # noqa: E402
from tests.contract import explanation  # noqa: E402
from tests.stack import Client, Stack  # noqa: E402

POLL_SECONDS = 0.1
UPLOAD_LIMIT_BYTES = 200_000_000  # the full xgb CSV is ~99 MB: leave room for the multipart envelope
ONE_THREAD = {
    "FITEXPLAIN_MODEL_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
CHUNK_LOG = re.compile(r"Task fitexplain\.run_chunk\[[^\]]+\] succeeded in ([0-9.]+)s: (\d+)")


@dataclass(frozen=True)
class Case:
    name: str
    endpoint: str
    params: dict[str, str]
    n_train: int
    n_test: int
    n_features: int
    n_chunks: int

    @property
    def chunk_rows(self) -> int:
        return max(1, -(-self.n_test // self.n_chunks))

    def env(self) -> dict[str, str]:
        return {
            **ONE_THREAD,
            "FITEXPLAIN_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT_BYTES),
            # The same chunking for both kinds of explainer (the service's defaults differ by kind).
            "FITEXPLAIN_FANOUT_CHUNK_ROWS": str(self.chunk_rows),
            "FITEXPLAIN_FANOUT_MIN_ROWS": str(2 * self.chunk_rows),
            "FITEXPLAIN_FANOUT_CHUNK_ROWS_AGNOSTIC": str(self.chunk_rows),
            "FITEXPLAIN_FANOUT_MIN_ROWS_AGNOSTIC": str(2 * self.chunk_rows),
            # Heartbeat often (fine-grained phases) but never call a job stale while one long C call
            # (json.dumps of the result holds the GIL for seconds) delays its heartbeat thread.
            "FITEXPLAIN_HEARTBEAT_SECONDS": "1",
            "FITEXPLAIN_STALE_AFTER_SECONDS": "60",
            "FITEXPLAIN_SOFT_TIME_LIMIT": "1800",
            # The model-agnostic job's estimate is an upper bound (every row at the evaluation budget,
            # ~300 s); it finishes in ~20 s. Raise the per-job budget rather than have it refused.
            "FITEXPLAIN_MAX_JOB_SECONDS": "3600",
        }


@dataclass
class Run:
    """One job through the service, its phases in seconds (None when not observed)."""

    n_workers: int
    total: float
    upload: float
    queued: float | None
    worker: float | None
    fit: float | None
    explain: float | None
    merge_encode: float | None
    store: float | None
    download: float
    result_mb: float
    download_mb: float
    n_chunks: int
    chunk_attempts: int
    helper_chunks: int
    helper_seconds: float
    checksum: str
    chunks_done_after: list[float]


def wait_until_ready(stack: Stack, index: int, timeout: float = 180) -> None:
    """Block until worker `index` logs Celery's "ready." line (its imports done, consuming the queue)."""
    log = stack.tmp / f"worker-{index}.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and " ready." in log.read_text(errors="replace"):
            return
        if stack.workers[index].poll() is not None:
            raise RuntimeError(f"worker {index} exited: {log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)
    raise RuntimeError(f"worker {index} not ready within {timeout} s")


def warm_up(client: Client, case: Case, n_jobs: int) -> None:
    """Tiny jobs of the same kind, submitted together, so each worker has run the code path once."""
    ids = []
    for _ in range(n_jobs):
        response = client.submit(case.endpoint, "boston_dataset2.csv", **case.params)
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    for job_id in ids:
        job = client.wait(job_id, timeout=600)
        if job["status"] != "succeeded":
            raise RuntimeError(f"warm-up job failed: {job}")


def timed_run(stack: Stack, client: Client, case: Case, content: bytes, n_workers: int) -> Run:
    """Submit, poll every 0.1 s noting when each phase is first seen, download; then read the DB and logs."""
    helper_before = helper_log_totals(stack)
    started = time.perf_counter()
    response = client.submit(case.endpoint, content, **case.params)
    upload = time.perf_counter() - started
    if response.status_code != 202:
        raise RuntimeError(f"{case.endpoint}: HTTP {response.status_code} {response.text[:500]}")
    job_id = response.json()["id"]
    seen: dict[str, datetime] = {}
    explained = f"SHAP {case.n_test}/{case.n_test} rows"
    with psycopg.connect(_dsn(stack), autocommit=True) as db:
        while True:
            job = client.http.get(f"/jobs/{job_id}").json()
            now = datetime.now(UTC)
            message = job.get("progress_message") or ""
            if "fitted" not in seen and _has_chunks(db, job_id):  # chunks are planned right after the fit
                seen["fitted"] = now
            if job["status"] == "running" and message not in ("", "starting", "fitting"):
                seen.setdefault("fitted", now)  # heartbeat-paced (1 s): used only when nothing fanned out
            if message in (explained, "done") or job["status"] == "succeeded":
                seen.setdefault("explained", now)  # likewise; replaced below by the last chunk's time
            if job["status"] in ("succeeded", "failed", "cancelled"):
                seen["stored"] = now
                break
            time.sleep(POLL_SECONDS)
    if job["status"] != "succeeded":
        raise RuntimeError(f"job {job_id} {job['status']}: {job.get('error')}")
    fetched = time.perf_counter()
    raw = client.http.get(f"/jobs/{job_id}/result")
    raw.raise_for_status()
    result = raw.json()
    download = time.perf_counter() - fetched
    total = time.perf_counter() - started

    created, began, finished = (_when(job, key) for key in ("created_at", "started_at", "finished_at"))
    n_chunks, attempts, chunks_done = chunk_counts(stack, job_id)
    if chunks_done:  # exact: each chunk's last heartbeat is written when it is stored
        seen["explained"] = max(chunks_done)
    helper_after = helper_log_totals(stack)
    return Run(
        n_workers=n_workers,
        total=total,
        upload=upload,
        queued=_gap(created, began),
        worker=_gap(began, finished),
        fit=_gap(began, seen.get("fitted")),
        explain=_gap(seen.get("fitted"), seen.get("explained")),
        merge_encode=_gap(seen.get("explained"), finished),
        store=_gap(finished, seen.get("stored")),
        download=download,
        result_mb=len(raw.content) / 1e6,
        download_mb=raw.num_bytes_downloaded / 1e6,
        n_chunks=n_chunks,
        chunk_attempts=attempts,
        helper_chunks=helper_after[0] - helper_before[0],
        helper_seconds=helper_after[1] - helper_before[1],
        checksum=shap_checksum(result, case),
        chunks_done_after=sorted(_gap(began, when) or 0.0 for when in chunks_done),
    )


def _dsn(stack: Stack) -> str:
    return stack.database_url.replace("postgresql+psycopg://", "postgresql://")


def _has_chunks(db: psycopg.Connection, job_id: str) -> bool:
    return db.execute("SELECT 1 FROM job_chunks WHERE job_id = %s LIMIT 1", (job_id,)).fetchone() is not None


def chunk_counts(stack: Stack, job_id: str) -> tuple[int, int, list[datetime]]:
    """(chunks, claims of them, when each was stored) for the job, from the job_chunks table."""
    with psycopg.connect(_dsn(stack)) as conn:
        rows = conn.execute(
            "SELECT attempts, heartbeat_at FROM job_chunks WHERE job_id = %s AND status = 'done'", (job_id,)
        ).fetchall()
    return len(rows), sum(row[0] for row in rows), [row[1] for row in rows if row[1] is not None]


def helper_log_totals(stack: Stack) -> tuple[int, float]:
    """(chunks, seconds) summed over every run_chunk task logged so far by this stack's workers."""
    chunks, seconds = 0, 0.0
    for log in stack.tmp.glob("worker-*.log"):
        for match in CHUNK_LOG.finditer(log.read_text(errors="replace")):
            seconds += float(match.group(1))
            chunks += int(match.group(2))
    return chunks, seconds


def shap_checksum(result: dict[str, Any], case: Case) -> str:
    """A digest of the SHAP values (the same with 1 or 2 workers: chunks are seeded by row)."""
    shap = explanation(result, "shap")
    values = np.asarray(shap["values"], dtype=float)
    if values.shape != (case.n_test, case.n_features):
        expected = (case.n_test, case.n_features)
        raise RuntimeError(f"SHAP values have shape {values.shape}, expected {expected}")
    return hashlib.sha256(values.tobytes()).hexdigest()[:16]


def _when(job: dict[str, Any], key: str) -> datetime | None:
    return datetime.fromisoformat(job[key]) if job.get(key) else None


def _gap(start: datetime | None, stop: datetime | None) -> float | None:
    return None if start is None or stop is None else (stop - start).total_seconds()


def run_case(case: Case) -> list[Run]:
    """The case with one worker, then with a second one started on the same stack."""
    print(
        f"\n== {case.name}: /{case.endpoint}?{'&'.join(f'{k}={v}' for k, v in case.params.items())}, "
        f"{case.n_train} training + {case.n_test} test rows x {case.n_features} features; "
        f"fan-out from {2 * case.chunk_rows} rows, {case.chunk_rows} rows per chunk",
        flush=True,
    )
    content = regression_csv(case.n_train, case.n_test, case.n_features)
    print(f"   CSV {len(content) / 1e6:.1f} MB", flush=True)
    runs = []
    with running_stack(0, extra_env=case.env()) as (stack, client):
        for n_workers in (1, 2):
            while len(stack.workers) < n_workers:
                stack.start_worker(concurrency=1)
                wait_until_ready(stack, len(stack.workers) - 1)
            warm_up(client, case, n_workers)
            run = timed_run(stack, client, case, content, n_workers)
            print_run(case, run)
            runs.append(run)
    print_speedup(runs)
    return runs


def print_run(case: Case, run: Run) -> None:
    def s(value: float | None) -> str:
        return "   n/a" if value is None else f"{value:6.1f}"

    rate = case.n_test / run.total
    worker_rate = case.n_test / run.worker if run.worker else float("nan")
    print(
        f"   {run.n_workers} worker(s): total {run.total:6.1f} s ({rate:,.0f} rows/s), "
        f"worker {s(run.worker)} s ({worker_rate:,.0f} rows/s), chunks {run.n_chunks} "
        f"(claims {run.chunk_attempts}, helper computed {run.helper_chunks} in {run.helper_seconds:.1f} s), "
        f"result {run.result_mb:.1f} MB JSON ({run.download_mb:.1f} MB gzip), SHAP digest {run.checksum}",
        flush=True,
    )
    print(
        f"      upload {s(run.upload)} | queued {s(run.queued)} | load+fit {s(run.fit)} "
        f"| explain {s(run.explain)}"
        f" | merge+JSON {s(run.merge_encode)} | gzip+DB write {s(run.store)} | download+decode "
        f"{s(run.download)}",
        flush=True,
    )
    if run.chunks_done_after:
        print(f"      chunks stored at +s: {' '.join(f'{t:.1f}' for t in run.chunks_done_after)}", flush=True)


def print_speedup(runs: list[Run]) -> None:
    one, two = runs
    parts = [f"total {one.total / two.total:.2f}x"]
    if one.worker and two.worker:
        parts.append(f"worker {one.worker / two.worker:.2f}x")
    if one.explain and two.explain:
        parts.append(f"explain phase {one.explain / two.explain:.2f}x")
    same = "identical" if one.checksum == two.checksum else "DIFFERENT"
    print(f"   speed-up 2 vs 1 workers: {', '.join(parts)}; SHAP values {same}", flush=True)


def cases(args: argparse.Namespace) -> list[Case]:
    scale = 10 if args.quick else 1
    n_rows, ml_rows = args.rows // scale, args.ml_rows // scale
    chosen = {
        "xgb": Case(
            "xgb",
            "gbdtregression",
            {"model_type": "xgboost", "interpretability": "shap"},
            n_train=max(n_rows // 5, 200),
            n_test=n_rows,
            n_features=args.features,
            n_chunks=args.chunks,
        ),
        "ml": Case(
            "ml",
            "mlregression",
            {"interpretability": "shap"},
            n_train=max(ml_rows // 5, 200),
            n_test=ml_rows,
            n_features=args.ml_features,
            n_chunks=args.chunks,
        ),
    }
    return [chosen[name] for name in args.cases.split(",")]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000, help="xgb case: test rows (training = rows / 5)")
    parser.add_argument("--features", type=int, default=100, help="xgb case: features")
    parser.add_argument("--ml-rows", type=int, default=5_000, help="ml case: test rows (training = rows / 5)")
    parser.add_argument("--ml-features", type=int, default=20, help="ml case: features")
    parser.add_argument("--chunks", type=int, default=10, help="chunks per job (sets the fan-out sizes)")
    parser.add_argument("--cases", default="xgb,ml", help="comma-separated: xgb, ml")
    parser.add_argument("--quick", action="store_true", help="10x fewer rows (and 10x smaller chunks)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    print(
        "workers: --concurrency 1 each; FITEXPLAIN_MODEL_THREADS=1, OMP/OPENBLAS/MKL_NUM_THREADS=1; "
        f"upload limit {UPLOAD_LIMIT_BYTES / 1e6:.0f} MB",
        flush=True,
    )
    figures = {case.name: [run.__dict__ for run in run_case(case)] for case in cases(args)}
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
