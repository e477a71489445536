"""What a submit's binding limit check costs as a user keeps more jobs: the user's row lock, the storage
quota and the unfinished-jobs count (`shared.limits.reserve_submission`), on Postgres.

    .venv/bin/python benchmarks/submit_limits.py [--sizes 100,1000,10000,50000] [--baseline DIR]

For each size, one user keeps that many finished jobs, each with a result, on a fresh migrated database
(the rows are written with SQL, in bulk); the check then runs 30 times in its own transaction and the
median is printed. `--baseline DIR` (a checkout of other code, e.g. `git archive <commit> | tar -x -C DIR`)
runs the same in a subprocess on that code, on a database migrated by it, and prints both side by side.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _baseline import measure_baseline, migrated_database

HERE = Path(__file__).resolve().parent
REPEATS = 30
USER = "INSERT INTO users (name, is_admin, created_at) VALUES ('heavy', false, now()) RETURNING id"
UPLOAD = """INSERT INTO datasets (sha256, blob_key, size_bytes, n_rows, n_columns, created_at)
VALUES (CAST(:d AS text), 'uploads/' || CAST(:d AS text) || '/bench.parquet', 5000, 150, 6, now())"""
JOBS = """INSERT INTO jobs (id, user_id, endpoint, params, spec, dataset_sha256, status, progress,
    progress_message, attempts, queue, stopping, created_at, finished_at)
SELECT 'j' || g, :u, 'gbdtclassification', '{}', '{}', :d, 'succeeded', 1, 'done', 1, 'small', false,
    now() - interval '1 hour', now() - interval '1 hour'
FROM generate_series(CAST(:start AS integer), CAST(:stop AS integer)) g"""
RESULTS = """INSERT INTO job_results (job_id, blob_key, size_bytes, stored_bytes, created_at)
SELECT 'j' || g, 'results/j' || g || '/bench.json.gz', 2000, 700, now()
FROM generate_series(CAST(:start AS integer), CAST(:stop AS integer)) g"""


def measure(code: Path, sizes: list[int]) -> dict[int, float]:
    """Median seconds of the check at each size, with `code`'s shared package and migrations."""
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    medians: dict[int, float] = {}
    with migrated_database(code, "fx_bench_limits") as engine:
        from shared.limits import reserve_submission
        from shared.settings import Settings

        url = engine.url.render_as_string(hide_password=False)
        settings = Settings(
            database_url=url, max_running_jobs_per_user=10**9, max_submissions_per_minute=10**9
        )
        with engine.begin() as connection:
            user = connection.execute(text(USER)).scalar_one()
            connection.execute(text(UPLOAD), {"d": "d" * 64})
        kept = 0
        for size in sizes:
            with engine.begin() as connection:
                span = {"start": kept, "stop": size - 1}
                connection.execute(text(JOBS), {"u": user, "d": "d" * 64, **span})
                connection.execute(text(RESULTS), span)
            with engine.connect() as connection:
                connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
            kept = size
            took = []
            for _ in range(REPEATS):
                with Session(engine) as session:
                    started = time.perf_counter()
                    reserve_submission(session, user, settings, upload=("e" * 64, 1000))
                    took.append(time.perf_counter() - started)
                    session.rollback()
            medians[size] = statistics.median(took)
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100,1000,10000,50000")
    parser.add_argument("--baseline", type=Path, help="a checkout of other code to measure first")
    parser.add_argument("--code", type=Path, default=HERE.parent, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = sorted(int(size) for size in args.sizes.split(","))
    if args.json:  # the baseline's run, in its own process (its own `shared` package)
        print(json.dumps(measure(args.code.resolve(), sizes)))
        return
    before = None
    if args.baseline is not None:
        before = measure_baseline(__file__, args.baseline, args.sizes)
    after = measure(args.code.resolve(), sizes)
    print(f"binding limit check (lock, quota, unfinished jobs), median of {REPEATS}, one user keeping N jobs")
    print(f"{'N jobs':>8}  {'this code':>10}" + (f"  {'baseline':>10}  {'ratio':>6}" if before else ""))
    for size in sizes:
        line = f"{size:>8}  {after[size] * 1000:>8.2f}ms"
        if before:
            line += f"  {before[size] * 1000:>8.2f}ms  {before[size] / after[size]:>5.1f}x"
        print(line)


if __name__ == "__main__":
    main()
