"""Load benchmark: many small jobs from concurrent clients through the real stack (API, Redis, workers).

    .venv/bin/python benchmarks/load.py [--jobs 500] [--clients 20] [--workers 2] [--permutation 0.2]

Each client submits a job, polls it until it finishes, then submits the next (a closed loop, as real
users do). Prints submit latency (seen by the client), queue wait (started_at - created_at) and
end to end (finished_at - created_at) from the job rows, throughput, and from job_events the jobs
lost (no terminal event) or run twice (two terminal events, or started again after finishing): both
must be 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psycopg

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make the repository's `tests` package importable
    sys.path.insert(0, str(REPO))

from tests.stack import DATA, Client, Stack  # noqa: E402

TERMINAL = ("succeeded", "failed", "cancelled")
POLL_FIRST_SECONDS = 0.05
POLL_MAX_SECONDS = 0.5


@dataclass
class Submissions:
    """What the clients saw, shared between their threads."""

    total: int
    next_index: int = 0
    job_ids: list[str] = field(default_factory=list)
    submit_seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    poll_errors: list[str] = field(default_factory=list)
    deadline: float = float("inf")
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> int | None:
        with self.lock:
            if self.next_index >= self.total or time.perf_counter() > self.deadline:
                return None
            self.next_index += 1
            return self.next_index - 1


def params_for(index: int, permutation_share: float) -> dict[str, object]:
    """Mostly bare fits; every k-th job also computes permutation importance."""
    every = round(1 / permutation_share) if permutation_share > 0 else 0
    with_permutation = every > 0 and index % every == 0
    return {"interpretability": "permutation" if with_permutation else "none", "seed": index}


def client_loop(client: Client, content: bytes, submissions: Submissions, permutation_share: float) -> None:
    while (index := submissions.take()) is not None:
        started = time.perf_counter()
        try:
            response = client.submit("gbdtclassification", content, **params_for(index, permutation_share))
        except Exception as exc:  # counted and shown: a benchmark reports failures, it does not hide them
            with submissions.lock:
                submissions.errors.append(f"submit: {type(exc).__name__}: {exc}")
            continue
        elapsed = time.perf_counter() - started
        if response.status_code != 202:
            with submissions.lock:
                submissions.errors.append(f"HTTP {response.status_code}: {response.text[:200]}")
            continue
        job_id = response.json()["id"]
        with submissions.lock:
            submissions.submit_seconds.append(elapsed)
            submissions.job_ids.append(job_id)
        delay = POLL_FIRST_SECONDS
        while (status := poll(client, job_id, submissions)) not in TERMINAL:
            time.sleep(delay if status else 1.0)
            delay = min(delay * 1.5, POLL_MAX_SECONDS)


def poll(client: Client, job_id: str, submissions: Submissions) -> str | None:
    """The job's status, or None (counted) when the API answered something else than 200."""
    try:
        response = client.http.get(f"/jobs/{job_id}")
    except Exception as exc:
        response, detail = None, f"{type(exc).__name__}: {exc}"
    if response is not None and response.status_code == 200:
        return response.json()["status"]
    if response is not None:
        detail = f"HTTP {response.status_code}: {response.text[:200]}"
    with submissions.lock:
        submissions.poll_errors.append(detail)
    return None


def job_figures(stack: Stack) -> tuple[list[tuple], dict[str, list[str]]]:
    dsn = stack.database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT id, status, attempts, created_at, started_at, finished_at FROM jobs"
        ).fetchall()
        event_rows = conn.execute("SELECT job_id, event FROM job_events ORDER BY at, id").fetchall()
    events: dict[str, list[str]] = {}
    for job_id, event in event_rows:
        events.setdefault(job_id, []).append(event)
    return rows, events


def lost_and_twice(job_ids: list[str], events: dict[str, list[str]]) -> tuple[list[str], list[str]]:
    """Jobs with no terminal event, and jobs finished twice or started again after finishing."""
    lost, twice = [], []
    for job_id in job_ids:
        history = events.get(job_id, [])
        terminal = [i for i, event in enumerate(history) if event in TERMINAL]
        if not terminal:
            lost.append(job_id)
        elif len(terminal) > 1 or "started" in history[terminal[0] :]:
            twice.append(job_id)
    return lost, twice


def quantiles(label: str, seconds: list[float]) -> str:
    if not seconds:
        return f"{label:<28} (none)"
    p50, p99 = np.percentile(np.asarray(seconds) * 1000, [50, 99])
    return f"{label:<28} p50 {p50:8.1f} ms   p99 {p99:8.1f} ms   (n={len(seconds)})"


def run(jobs: int, clients: int, workers: int, permutation_share: float, max_seconds: float) -> int:
    stack = Stack(
        Path(tempfile.mkdtemp(prefix="fx_load_")),
        extra_env={
            "FITEXPLAIN_MAX_RUNNING_JOBS_PER_USER": "1000000",
            "FITEXPLAIN_MAX_SUBMISSIONS_PER_MINUTE": "1000000",
            "FITEXPLAIN_SWEEP_SECONDS": "5",
            "FITEXPLAIN_HEARTBEAT_SECONDS": "5",
            "FITEXPLAIN_STALE_AFTER_SECONDS": "60",
        },
    )
    try:
        stack.setup()
        for _ in range(workers):
            stack.start_worker()
        stack.start_api()
        token = stack.token("load")
        content = (DATA / "iris_dataset2.csv").read_bytes()
        # Warm-up: the first job in each worker pays its lazy imports; not part of the figures.
        warm = Client(stack.url, token)
        for seed in range(workers):
            warm.wait(
                warm.submit("gbdtclassification", content, seed=10_000 + seed).json()["id"], timeout=300
            )
        warm_ids = set(stack_job_ids(stack))

        submissions = Submissions(jobs)
        submissions.deadline = time.perf_counter() + max_seconds
        threads = [
            threading.Thread(
                target=client_loop,
                args=(Client(stack.url, token), content, submissions, permutation_share),
                daemon=True,
            )
            for _ in range(clients)
        ]
        wall_started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - wall_started

        rows, events = job_figures(stack)
        rows = [row for row in rows if row[0] not in warm_ids]
        finished = [row for row in rows if row[1] in TERMINAL and row[4] is not None]
        queue_wait = [(row[4] - row[3]).total_seconds() for row in finished]
        end_to_end = [(row[5] - row[3]).total_seconds() for row in finished if row[5] is not None]
        lost, twice = lost_and_twice(submissions.job_ids, events)
        statuses = {status: sum(row[1] == status for row in rows) for status in TERMINAL}

        print(
            f"load: {jobs} jobs (gbdtclassification lightgbm on iris, {permutation_share:.0%} with "
            f"permutation), {clients} clients, {workers} workers x concurrency 1"
        )
        print(quantiles("submit latency (client)", submissions.submit_seconds))
        print(quantiles("queue wait (started-created)", queue_wait))
        print(quantiles("end to end (finished-created)", end_to_end))
        print(f"{'throughput':<28} {len(finished) / wall:8.2f} jobs/s ({len(finished)} jobs in {wall:.1f} s)")
        print(f"{'statuses':<28} {statuses}; retried (attempts > 1): {sum(row[2] > 1 for row in rows)}")
        print(f"{'submit errors':<28} {len(submissions.errors)} {submissions.errors[:3]}")
        print(f"{'poll errors':<28} {len(submissions.poll_errors)} {submissions.poll_errors[:3]}")
        print(f"{'lost / run twice':<28} {len(lost)} / {len(twice)}")
        return 0 if not (lost or twice or submissions.errors or submissions.poll_errors) else 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave processes behind
        stack.stop()
        print(f"stack stopped, database {stack.name} dropped (logs in {stack.tmp})", file=sys.stderr)


def stack_job_ids(stack: Stack) -> list[str]:
    dsn = stack.database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        return [row[0] for row in conn.execute("SELECT id FROM jobs").fetchall()]


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--permutation", type=float, default=0.2, help="share of jobs with permutation")
    parser.add_argument("--max-seconds", type=float, default=900, help="submit no new job after this")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    sys.exit(run(args.jobs, args.clients, args.workers, args.permutation, args.max_seconds))


if __name__ == "__main__":
    main()
