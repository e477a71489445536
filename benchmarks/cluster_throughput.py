"""Throughput of a cluster that shares nothing on disk, by its number of workers.

    .venv/bin/python benchmarks/cluster_throughput.py [--workers 1,2,4] [--trivial 40] [--medium 8]
        [--submissions 1000] [--clients 20]

Runs as root (each machine is a Unix user of its own, as in tests/cluster): the API and N workers
(concurrency 1, FITEXPLAIN_MODEL_THREADS=1), each with its own FITEXPLAIN_HOME, sharing only Postgres,
Redis and an S3 server (moto). For each N it submits a batch of the seed's trivial job (gbdtregression
on boston, permutation importance) and a batch of CPU-bound medium jobs (scikit-learn's gradient
boosting, 1,000 trees on 3,200 rows, 6 s or more each), all at once, and prints jobs/s, submit and end-to-end
p50/p99 and the ratio of jobs/s to one worker's. Then 20 clients submit at least 1,000 trivial jobs as
fast as the API takes them: submit p50, p99 and their ratio (the same run).
"""

from __future__ import annotations

import argparse
import collections
import logging
import signal
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make the repository's `tests` package importable
    sys.path.insert(0, str(REPO))

from benchmarks._stack import SERVICE_INTERVALS  # noqa: E402
from tests.cluster.conftest import Cluster, make_cluster  # noqa: E402
from tests.cluster.fault_proxy import fault_proxy  # noqa: E402
from tests.faults.conftest import slow_csv, slow_params  # noqa: E402
from tests.s3 import S3Server, moto_server  # noqa: E402
from tests.stack import DATA, Client  # noqa: E402

SETTINGS = {
    **SERVICE_INTERVALS,
    "FITEXPLAIN_MODEL_THREADS": "1",  # one core per job: N workers' jobs need N cores
    "FITEXPLAIN_MAX_RUNNING_JOBS_PER_USER": "1000000",
    "FITEXPLAIN_MAX_SUBMISSIONS_PER_MINUTE": "1000000",
}
TRIVIAL = ("gbdtregression", (DATA / "boston_dataset2.csv").read_bytes(), {"interpretability": "permutation"})
# 3,200 rows: a medium job runs 6 s or more on a quiet core (2,000 rows take about 4 s; 1,000 trees is the
# service's limit).
MEDIUM = ("gbdtclassification", slow_csv(n_rows=3200), slow_params())


class S3Requests(logging.Handler):
    """Counts the requests moto's server logs (werkzeug's access log), by method."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()

    def emit(self, record: logging.LogRecord) -> None:
        line = record.getMessage()
        for method in ("GET", "PUT", "HEAD", "POST", "DELETE"):
            if f'"{method} ' in line:
                self.counts[method] += 1


S3_REQUESTS = S3Requests()
STATS = "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted FROM pg_stat_database WHERE datname = %s"


@dataclass
class Batch:
    jobs_per_second: float
    submit: list[float]
    end_to_end: list[float]
    per_job: dict[str, float]  # Postgres transactions and rows, S3 requests and bytes, worker-seconds


def percentiles(seconds: list[float]) -> tuple[float, float]:
    p50, p99 = np.percentile(np.asarray(seconds), [50, 99])
    return float(p50), float(p99)


def submit(client: Client, job: tuple[str, bytes, dict[str, object]], seed: int) -> tuple[str, float]:
    endpoint, content, params = job
    started = time.perf_counter()
    response = client.submit(endpoint, content, **{**params, "seed": seed})
    elapsed = time.perf_counter() - started
    if response.status_code != 202:
        raise RuntimeError(f"{endpoint}: HTTP {response.status_code} {response.text[:300]}")
    return response.json()["id"], elapsed


def batch(cluster: Cluster, client: Client, job: tuple[str, bytes, dict[str, object]], count: int) -> Batch:
    """`count` jobs submitted at once (8 clients), waited for; figures from the job rows."""
    stats_before = pg_stats(cluster)
    s3_before = S3_REQUESTS.counts.copy()
    with ThreadPoolExecutor(8) as pool:
        submitted = list(pool.map(lambda seed: submit(client, job, seed), range(count)))
    ids = [job_id for job_id, _ in submitted]
    for job_id in ids:
        done = client.wait(job_id, timeout=1800)
        if done["status"] != "succeeded":
            raise RuntimeError(f"job {job_id}: {done['status']} {done.get('error')}")
    for job_id in ids:  # what a user does next: read the result (from the bucket)
        client.result(job_id)
    rows = cluster.query("SELECT created_at, started_at, finished_at FROM jobs WHERE id = ANY(%s)", ids)
    first = min(created for created, _, _ in rows)
    last = max(finished for _, _, finished in rows)
    time.sleep(1.5)  # Postgres publishes its statistics at most once a second
    stats = [after - before for before, after in zip(stats_before, pg_stats(cluster), strict=True)]
    s3 = S3_REQUESTS.counts - s3_before
    stored = cluster.query(
        "SELECT coalesce(sum(stored_bytes + parquet_bytes), 0) FROM job_results WHERE job_id = ANY(%s)",
        ids,
    )[0][0]
    per_job = {
        "pg transactions": stats[0] / count,
        "pg rows written": (stats[1] + stats[2] + stats[3]) / count,
        "s3 GET": s3["GET"] / count,
        "s3 PUT": s3["PUT"] / count,
        "s3 other": (sum(s3.values()) - s3["GET"] - s3["PUT"]) / count,
        "upload bytes": len(job[1]),
        "result bytes (gzip)": float(stored) / count,  # type: ignore[arg-type]
        "worker-seconds": sum((f - s).total_seconds() for _, s, f in rows) / count,  # type: ignore[operator]
    }
    return Batch(
        count / (last - first).total_seconds(),  # type: ignore[operator]
        [seconds for _, seconds in submitted],
        [(finished - created).total_seconds() for created, _, finished in rows],  # type: ignore[operator]
        per_job,
    )


def pg_stats(cluster: Cluster) -> list[int]:
    found = cluster.query(STATS, cluster.stack.name)[0]
    return [int(value) for value in found]  # type: ignore[call-overload]


def submit_storm(client: Client, submissions: int, clients: int) -> list[float]:
    """`clients` threads submitting the trivial job back to back until `submissions` are in."""
    with ThreadPoolExecutor(clients) as pool:
        return [seconds for _, seconds in pool.map(lambda i: submit(client, TRIVIAL, i), range(submissions))]


def run(workers: list[int], trivial: int, medium: int, submissions: int, clients: int) -> None:
    results: dict[tuple[str, int], Batch] = {}
    storm: list[float] = []
    with moto_server() as s3:
        host, port = s3.endpoint.removeprefix("http://").split(":")
        with fault_proxy((host, int(port))) as proxy:
            for n in workers:
                tmp = Path(tempfile.mkdtemp(prefix="fx_cluster_bench_"))
                names = tuple(f"w{i}" for i in range(n))
                with make_cluster(tmp, S3Server(s3.endpoint), proxy, names, SETTINGS) as cluster:
                    cluster.stack.wait_for_workers(n)
                    client = Client(cluster.stack.url, cluster.stack.token("bench"))
                    batch(cluster, client, TRIVIAL, n)  # warm-up: each worker's first job
                    results["trivial", n] = batch(cluster, client, TRIVIAL, trivial)
                    results["medium", n] = batch(cluster, client, MEDIUM, medium)
                    print(f"{n} worker(s) done", file=sys.stderr)
                    if n == workers[0]:
                        storm = submit_storm(client, submissions, clients)
    print(
        f"{'job':<8} {'workers':>7} {'jobs/s':>8} {'x 1 worker':>10} {'submit p50/p99 ms':>20} "
        f"{'end-to-end p50/p99 s':>22}"
    )
    for kind, count in (("trivial", trivial), ("medium", medium)):
        base = results[kind, workers[0]].jobs_per_second
        for n in workers:
            found = results[kind, n]
            s50, s99 = percentiles(found.submit)
            e50, e99 = percentiles(found.end_to_end)
            print(
                f"{kind:<8} {n:>7} {found.jobs_per_second:>8.2f} {found.jobs_per_second / base:>10.2f} "
                f"{s50 * 1000:>9.1f} / {s99 * 1000:<8.1f} {e50:>10.2f} / {e99:<9.2f} ({count} jobs)"
            )
    for kind in ("trivial", "medium"):
        costs = results[kind, workers[0]].per_job
        print(f"per {kind} job ({workers[0]} worker): " + ", ".join(f"{k} {v:.1f}" for k, v in costs.items()))
    p50, p99 = percentiles(storm)
    print(
        f"submit at {clients} clients: {len(storm)} submissions, p50 {p50 * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms, p99/p50 {p99 / p50:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--trivial", type=int, default=40)
    parser.add_argument("--medium", type=int, default=8)
    parser.add_argument("--submissions", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=20)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda signum, _: sys.exit(128 + signum))  # stop the cluster on the way
    logging.getLogger("werkzeug").addHandler(S3_REQUESTS)
    logging.getLogger("werkzeug").setLevel(logging.INFO)
    counts = [int(n) for n in args.workers.split(",")]
    run(counts, args.trivial, args.medium, args.submissions, args.clients)


if __name__ == "__main__":
    main()
