"""Dashboard benchmark: the jobs page with 10,000 jobs in the table, against the JSON /admin/jobs.

    .venv/bin/python benchmarks/dashboard.py [--jobs 10000] [--repeat 30]

Fills a fresh database with `--jobs` jobs (five users, four endpoints, every status, created over 30
days), then asks each page `--repeat` times and reports the median and p95 of the server's own time
(the `Server-Timing` header: request arrival to first byte, template rendering included), the API
process's CPU time for the request (the figure that stays meaningful on a loaded machine), and the
client's round trip. The baseline is the JSON list of the same 50 jobs (`/admin/jobs`) in the same run.
The goal: the jobs page renders in under 100 ms of server time.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import create_engine, insert, select

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks._stack import running_stack  # noqa: E402
from shared.ml.spec import JobSpec, ModelSpec  # noqa: E402
from shared.tables import Job, Upload, User, new_id, utcnow  # noqa: E402

ENDPOINTS = ("mlclassification", "mlregression", "gbdtclassification", "gbdtregression")
STATUSES = ("succeeded",) * 6 + ("failed", "cancelled", "queued", "running")


def fill(database_url: str, n_jobs: int) -> str:
    """Insert `n_jobs` jobs in bulk; returns a failed job's id prefix to search for."""
    engine = create_engine(database_url)
    rng = random.Random(0)
    now = utcnow()
    with engine.begin() as connection:
        connection.execute(
            insert(Upload).values(sha256="0" * 64, content=b"x", size_bytes=1, n_rows=150, n_columns=4)
        )
        connection.execute(insert(User), [{"name": f"user{k}", "is_admin": False} for k in range(5)])
        user_ids = list(connection.scalars(select(User.id)))
        rows = []
        for k in range(n_jobs):
            status = rng.choice(STATUSES)
            created = now - timedelta(seconds=rng.uniform(0, 30 * 86400))
            started = created + timedelta(seconds=rng.uniform(0.1, 5)) if status != "queued" else None
            finished = (
                started + timedelta(seconds=rng.uniform(0.1, 60))
                if status not in ("queued", "running")
                else None
            )
            rows.append(
                {
                    "id": new_id(),
                    "user_id": rng.choice(user_ids),
                    "endpoint": rng.choice(ENDPOINTS),
                    "params": {"model_type": "lightgbm", "interpretability": "shap", "seed": k},
                    "spec": JobSpec(
                        model=ModelSpec(task="regression", family="gbdt", seed=k), interpretability=("shap",)
                    ).to_json(),
                    "dataset_sha256": "0" * 64,
                    "status": status,
                    "progress": 1.0 if finished else 0.0,
                    "progress_message": status,
                    "error_code": "internal_error" if status == "failed" else None,
                    "error_message": "Internal error" if status == "failed" else None,
                    "attempts": 0 if status == "queued" else 1,
                    "created_at": created,
                    "started_at": started,
                    "finished_at": finished,
                }
            )
        connection.execute(insert(Job), rows)
        connection.exec_driver_sql("ANALYZE")
        failed = connection.scalar(select(Job.id).where(Job.status == "failed").limit(1))
    engine.dispose()
    return str(failed)[:8]


def server_timing(response: httpx.Response) -> dict[str, float]:
    """{"app": wall ms, "cpu": API process CPU ms} from `Server-Timing: app;dur=12.3, cpu;dur=9.8`."""
    entries = (part.strip().split(";dur=") for part in response.headers["server-timing"].split(","))
    return {name: float(value) for name, value in entries}


@dataclass
class PageTimes:
    wall_p50: float
    wall_p95: float
    cpu_p50: float
    client_p50: float
    size: int


def measure(http: httpx.Client, path: str, repeat: int) -> PageTimes:
    http.get(path).raise_for_status()  # warm-up
    wall, cpu, client = [], [], []
    size = 0
    for _ in range(repeat):
        started = time.perf_counter()
        response = http.get(path)
        client.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        timing = server_timing(response)
        wall.append(timing["app"])
        cpu.append(timing["cpu"])
        size = len(response.content)
    wall.sort()
    p95 = wall[int(0.95 * (len(wall) - 1))]
    return PageTimes(statistics.median(wall), p95, statistics.median(cpu), statistics.median(client), size)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()

    with running_stack(n_workers=0) as (stack, _client):
        prefix = fill(stack.database_url, args.jobs)
        token = stack.token("bench-admin", admin=True)
        cookie_client = httpx.Client(base_url=stack.url, timeout=60)
        assert cookie_client.post("/dashboard/sign-in", data={"token": token}).status_code == 303
        bearer = httpx.Client(base_url=stack.url, timeout=60, headers={"Authorization": f"Bearer {token}"})
        cases = [
            ("baseline: JSON /admin/jobs?limit=50", bearer, "/admin/jobs?limit=50"),
            ("jobs page, newest 50", cookie_client, "/dashboard/jobs"),
            ("jobs page, status=failed", cookie_client, "/dashboard/jobs?status=failed"),
            ("jobs page, endpoint + user", cookie_client, "/dashboard/jobs?endpoint=mlregression&user=user3"),
            ("jobs page, search by id", cookie_client, f"/dashboard/jobs?q={prefix}"),
            ("jobs page, offset 5000", cookie_client, "/dashboard/jobs?offset=5000"),
            ("jobs page live refresh", cookie_client, "/dashboard/jobs?fragment=1"),
            ("overview", cookie_client, "/dashboard"),
        ]
        print(f"dashboard: {args.jobs} jobs in the table, {args.repeat} requests a page (one API process)")
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the start")
        header = ("page", "server p50", "server p95", "server CPU", "client p50", "size", "CPU vs baseline")
        print(f"{header[0]:36}" + "".join(f"{h:>12}" for h in header[1:6]) + f"  {header[6]}")
        baseline = None
        for name, http, path in cases:
            t = measure(http, path, args.repeat)
            baseline = baseline or t.cpu_p50
            print(
                f"{name:36}{t.wall_p50:9.1f} ms{t.wall_p95:9.1f} ms{t.cpu_p50:9.1f} ms{t.client_p50:9.1f} ms"
                f"{t.size / 1000:9.1f} kB  {t.cpu_p50 / baseline:4.2f}x"
            )


if __name__ == "__main__":
    main()
