"""What a worker's claim costs as the queue grows: `claim_next` (the fair-share claim, one statement),
on Postgres.

    .venv/bin/python benchmarks/fair_claim.py [--sizes 100,1000,5000] [--baseline DIR]

For each size, 20 users have that many jobs queued between them in one queue, two jobs running each, and
500 jobs each that finished in the last five minutes, on a fresh migrated database (written with SQL, in
bulk); the claim then runs 30 times, each in a transaction rolled back (the queue stays as it was), and
the median is printed. `--baseline DIR` (a checkout of other code, e.g. `git archive <commit> | tar -x -C
DIR`) runs the same in a subprocess on that code, on a database migrated by it, and prints both side by
side.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _baseline import measure_baseline, migrated_database

HERE = Path(__file__).resolve().parent
REPEATS = 30
USERS = 20
RUNNING_EACH = 2
FINISHED_EACH = 500
USER = "INSERT INTO users (name, is_admin, created_at) VALUES (:name, false, now()) RETURNING id"
UPLOAD = """INSERT INTO datasets (sha256, blob_key, size_bytes, n_rows, n_columns, created_at)
VALUES ('bench', 'uploads/bench/bench.parquet', 5000, 150, 6, now())"""
JOBS = """INSERT INTO jobs (id, user_id, endpoint, params, spec, dataset_sha256, status, progress,
    progress_message, attempts, queue, stopping, estimated_seconds, created_at, started_at, finished_at,
    heartbeat_at, worker)
SELECT CAST(:prefix AS text) || g, CAST(:first_user AS integer) + g % CAST(:users AS integer),
    'gbdtclassification', '{}', '{}', 'bench', CAST(:status AS text), 0, '',
    CASE WHEN CAST(:status AS text) = 'queued' THEN 0 ELSE 1 END, 'small', false, 1 + g % 7,
    now() - make_interval(secs => CAST(:age AS double precision) + g * 0.001),
    CASE WHEN CAST(:status AS text) = 'queued' THEN NULL
         ELSE now() - make_interval(secs => CAST(:age AS double precision)) END,
    CASE WHEN CAST(:status AS text) = 'succeeded'
         THEN now() - make_interval(secs => CAST(:age AS double precision)) END,
    CASE WHEN CAST(:status AS text) = 'running' THEN now() END,
    CASE WHEN CAST(:status AS text) = 'queued' THEN NULL ELSE 'bench:1' END
FROM generate_series(CAST(:start AS integer), CAST(:stop AS integer)) g"""


def measure(code: Path, sizes: list[int]) -> dict[int, float]:
    """Median seconds of a claim at each queue size, with `code`'s shared package and migrations."""
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    medians: dict[int, float] = {}
    with migrated_database(code, "fx_bench_claim") as engine:
        from shared.store.jobstore import claim_next

        with engine.begin() as connection:
            users = [connection.execute(text(USER), {"name": f"u{i}"}).scalar_one() for i in range(USERS)]
            connection.execute(text(UPLOAD))
            first = min(users)
            for prefix, status, count, age in (
                ("r", "running", USERS * RUNNING_EACH, 30),
                ("f", "succeeded", USERS * FINISHED_EACH, 120),
            ):
                values = {"prefix": prefix, "status": status, "first_user": first, "users": USERS}
                connection.execute(text(JOBS), {**values, "age": age, "start": 1, "stop": count})
        queued = 0
        for size in sizes:
            with engine.begin() as connection:
                values = {"prefix": "q", "status": "queued", "first_user": first, "users": USERS, "age": 60}
                connection.execute(text(JOBS), {**values, "start": queued + 1, "stop": size})
                connection.execute(text("ANALYZE jobs"))
            queued = size
            timings = []
            for _ in range(REPEATS):
                with engine.connect() as connection, connection.begin() as transaction:
                    session = Session(bind=connection)
                    started = time.perf_counter()
                    claimed = claim_next(session, "q1", worker="bench:2", stale_after=60, max_attempts=3)
                    timings.append(time.perf_counter() - started)
                    assert claimed.job is not None, claimed.reason
                    transaction.rollback()
            medians[size] = statistics.median(timings)
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,5000")
    parser.add_argument("--baseline", type=Path, help="a checkout of other code to compare with")
    parser.add_argument("--code", type=Path, default=HERE.parent, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # the baseline's answer
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    if args.json:
        print(json.dumps(measure(args.code.resolve(), sizes)))
        return
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    here = measure(args.code.resolve(), sizes)
    there: dict[int, float] = {}
    if args.baseline is not None:
        there = measure_baseline(__file__, args.baseline, args.sizes)
    print("| queued jobs | claim, ms | baseline, ms |")
    print("|---:|---:|---:|")
    for size in sizes:
        baseline = f"{there[size] * 1000:.2f}" if size in there else "–"
        print(f"| {size} | {here[size] * 1000:.2f} | {baseline} |")


if __name__ == "__main__":
    main()
