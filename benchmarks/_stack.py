"""Benchmark helpers around tests.stack: a stack that always cleans up, and one timed HTTP request.

`running_stack` guarantees the database is dropped, the queue purged and every process it started
stopped, whether the benchmark ends normally, raises, gets Ctrl-C or gets SIGTERM.
"""

from __future__ import annotations

import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make the repository's `tests` package importable
    sys.path.insert(0, str(REPO))

from tests.stack import DATA, Client, Stack  # noqa: E402

# The service's own defaults for its background loops (sweep, webhook poll, heartbeats), which the test
# stack runs faster: a benchmark of the deployed service's speed runs them at these.
SERVICE_INTERVALS = {
    "FITEXPLAIN_SWEEP_SECONDS": "5",
    "FITEXPLAIN_WEBHOOK_POLL_SECONDS": "1",
    "FITEXPLAIN_HEARTBEAT_SECONDS": "5",
    "FITEXPLAIN_STALE_AFTER_SECONDS": "60",
}
POLL_FIRST_SECONDS = 0.02
POLL_MAX_SECONDS = 0.25
FINISHED = ("succeeded", "failed", "cancelled")


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def running_stack(
    n_workers: int, concurrency: int = 1, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[Stack, Client]]:
    """A fresh database, `n_workers` worker processes, the API and one user's client; torn down on exit
    (also on Ctrl-C or SIGTERM). `extra_env` adds FITEXPLAIN_* settings for every process."""
    previous_term = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    stack = Stack(Path(tempfile.mkdtemp(prefix="fx_bench_")), extra_env=dict(extra_env or {}))
    try:
        stack.setup()
        for _ in range(n_workers):
            stack.start_worker(concurrency=concurrency)
        stack.start_api()
        yield stack, Client(stack.url, stack.token("bench"))
    finally:
        # A second Ctrl-C during teardown would leave a database and processes behind: ignore it.
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            stack.stop()
        finally:
            signal.signal(signal.SIGINT, previous_int)
            signal.signal(signal.SIGTERM, previous_term)
        print(f"stack stopped, database {stack.name} dropped (logs in {stack.tmp})", file=sys.stderr)


@dataclass
class TimedRequest:
    """One request from submit to result, seen by the client, plus the worker's own run time."""

    result: dict[str, Any]
    seconds: float
    worker_seconds: float | None
    queued_seconds: float | None


def timed_request(client: Client, endpoint: str, csv_name: str, params: dict[str, object]) -> TimedRequest:
    """Submit, poll /jobs/{id} (20 ms doubling to 250 ms), then GET the result; raise if it failed."""
    content = (DATA / csv_name).read_bytes()
    started = time.perf_counter()
    response = client.submit(endpoint, content, **params)
    if response.status_code != 202:
        raise RuntimeError(f"{endpoint} {params}: HTTP {response.status_code} {response.text[:500]}")
    job_id = response.json()["id"]
    delay = POLL_FIRST_SECONDS
    while True:
        job = client.http.get(f"/jobs/{job_id}").json()
        if job["status"] in FINISHED:
            break
        time.sleep(delay)
        delay = min(delay * 2, POLL_MAX_SECONDS)
    if job["status"] != "succeeded":
        raise RuntimeError(f"{endpoint} {params}: job {job_id} {job['status']}: {job.get('error')}")
    result = client.result(job_id)
    seconds = time.perf_counter() - started
    return TimedRequest(
        result, seconds, _gap(job, "started_at", "finished_at"), _gap(job, "created_at", "started_at")
    )


def _gap(job: dict[str, Any], start_key: str, stop_key: str) -> float | None:
    from datetime import datetime

    if not job.get(start_key) or not job.get(stop_key):
        return None
    return (datetime.fromisoformat(job[stop_key]) - datetime.fromisoformat(job[start_key])).total_seconds()
