"""The per-job cost of running a job's computation in a killable child process (worker/computation.py).

One process that imports the ML stack as a worker does, then the same trivial job (iris, the
/gbdtclassification defaults: lightgbm, no explanation) alternately inline and in the supervised
child of a KillableExecutor (as a worker runs it). Both do one database round trip. A third variant
kills the child after every job, so each job pays a fresh fork: the cost after a cancel or a time limit.

    PYTHONPATH=. .venv/bin/python benchmarks/killable_overhead.py [--jobs 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.databases import create_database, drop_database  # noqa: E402
from tests.stack import DATA  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=30, help="jobs per variant")
    args = parser.parse_args()
    name = f"fx_bench_{uuid.uuid4().hex[:10]}"
    os.environ["FITEXPLAIN_DATABASE_URL"] = create_database(name)
    try:
        run(args.jobs)
    finally:
        from shared.db import get_engine

        get_engine().dispose()
        drop_database(name)


def compute(content: bytes, spec: Any, progress: object) -> str:
    """The trivial job, with the database round trip every job makes."""
    from sqlalchemy import text

    from shared.db import session_scope
    from shared.ml.pipeline import run as run_pipeline
    from shared.settings import get_settings

    settings = get_settings()
    run_pipeline(content, spec, settings.limits(), n_threads=settings.model_threads)
    with session_scope() as session:
        session.execute(text("SELECT 1"))
    return "succeeded"


def run(n_jobs: int) -> None:
    from threadpoolctl import threadpool_limits

    import worker.app  # noqa: F401  (the ML stack, imported once as in a worker)
    from api.endpoint_params import GbdtClassificationParams, job_spec
    from shared.settings import get_settings
    from worker.computation import KillableExecutor

    settings = get_settings()
    threadpool_limits(limits=settings.model_threads)
    content = (DATA / "iris_dataset2.csv").read_bytes()
    spec = job_spec("gbdtclassification", GbdtClassificationParams())

    def inline() -> None:
        assert compute(content, spec, None) == "succeeded"

    kept, renewed = KillableExecutor(), KillableExecutor()

    def in_child(executor: KillableExecutor) -> None:
        ended = executor.run(
            partial(compute, content, spec),
            time_limit=60,
            poll_seconds=1.0,
            still_wanted=lambda: True,
            on_progress=lambda *_: None,
        )
        assert ended.detail == "succeeded", ended

    def killable() -> None:
        in_child(kept)

    def fresh_child() -> None:
        in_child(renewed)
        renewed.close()  # as after a cancel: the next job forks a new child

    variants = {"inline": inline, "reused child": killable, "fresh child": fresh_child}
    for job in variants.values():  # warm every path (lazy imports, first connections)
        job()
    times: dict[str, list[float]] = {label: [] for label in variants}
    for _ in range(n_jobs):  # interleaved, so machine load affects all alike
        for label, job in variants.items():
            start = time.perf_counter()
            job()
            times[label].append(time.perf_counter() - start)
    kept.close()
    print(f"iris /gbdtclassification (lightgbm, no explanation), {n_jobs} jobs each, interleaved")
    baseline = statistics.median(times["inline"])
    for label, values in times.items():
        median = statistics.median(values)
        print(
            f"  {label:16s} median {median * 1000:7.1f} ms   mean {statistics.fmean(values) * 1000:7.1f} ms"
            f"   ratio to inline {median / baseline:.2f}x   overhead {(median - baseline) * 1000:+.1f} ms"
        )


if __name__ == "__main__":
    main()
