"""How long a trivial job takes through the real service, and where the time goes.

    .venv/bin/python benchmarks/latency.py [--jobs 100] [--only pg|embedded] [--json out.json]
                                           [--baseline DIR [--interleave]]

`--baseline DIR` (a checkout of other code, e.g. `git archive <commit> | tar -x -C DIR`) runs each
deployment on that code first, then on this repository's, in the same run (same machine load). With
`--interleave`, both Postgres + Redis deployments run at once and take turns job by job (the order rotating
each round), and the paired differences are printed: on a noisy machine, runs one after the other of the
same code differ by 10 ms (55 and 65 ms seen), which hides any change smaller than that.

Two deployments, each started fresh:
- **pg**: `fitexplain api` and one `fitexplain worker` (concurrency 1) on a fresh Postgres database and
  Redis (benchmarks/_stack.py), with the service's default intervals for its background loops (sweep,
  webhook poll, heartbeats), which the test stack runs faster;
- **embedded**: `fitexplain serve` with no database or broker URL in a temporary FITEXPLAIN_HOME (SQLite
  database, Celery's SQLAlchemy transport on SQLite, a small-job and a large-job worker).

On each, N trivial jobs (iris on /gbdtclassification, xgboost, no explanation) are submitted one at a time:
- **poll**: submit (202), then GET /jobs/{id} every 2 ms until it is finished: submit → done;
- **wait**: submit with `wait=30`: the round trip, and the gap between the job's `finished_at` and the
  moment the answer arrived (what the API's waiting costs on top of the job).

The breakdown reads the job rows' timestamps (all processes share this machine's clock): request sent →
row created (HTTP, auth, parsing, validation, insert), created → dispatched (commit, publish, mark),
created → started (delivery to the worker, claim), started → finished (worker: heartbeat, computation
child, fit, result store), finished → answered. "commit notified → answered" starts when this process,
LISTENing on the service's channel, heard the job's finishing commit (Postgres only; code without
notifications has none): it is what waiting costs the API on top of the job. "fit in-process" is
`shared.ml.pipeline.run` on the same CSV in this process, so "started → finished" minus it is the
worker's own overhead.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import psycopg  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from benchmarks._stack import SERVICE_INTERVALS, _raise_keyboard_interrupt, running_stack  # noqa: E402
from shared.store.job_events import parse_notification  # noqa: E402
from tests.canonical import canonical  # noqa: E402
from tests.stack import DATA  # noqa: E402
from tests.stack import embedded_serve as start_embedded_serve  # noqa: E402

CSV = (DATA / "iris_dataset2.csv").read_bytes()
PARAMS = {"model_type": "xgboost"}
FINISHED = ("succeeded", "failed", "cancelled")
WARMUP = 5


@dataclass
class Sample:
    job_id: str
    sent: float  # wall clock (time.time()), comparable with the rows' timestamps
    accepted: float  # the POST's answer arrived
    done: float  # poll: the finished status was seen; wait: the 200 arrived


@dataclass
class Run:
    deployment: str
    mode: str
    samples: list[Sample] = field(default_factory=list)


def submit(http: httpx.Client, **extra: object) -> httpx.Response:
    query = {k: str(v) for k, v in {**PARAMS, **extra}.items()}
    return http.post("/gbdtclassification", params=query, files={"file": ("iris.csv", CSV, "text/csv")})


def run_poll(http: httpx.Client, n: int) -> list[Sample]:
    samples = []
    for _ in range(n):
        sent = time.time()
        response = submit(http)
        accepted = time.time()
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        while True:
            job = http.get(f"/jobs/{job_id}").json()
            if job["status"] in FINISHED:
                break
            time.sleep(0.002)
        assert job["status"] == "succeeded", job
        samples.append(Sample(job_id, sent, accepted, time.time()))
    return samples


def run_wait(http: httpx.Client, n: int) -> list[Sample]:
    samples = []
    for _ in range(n):
        sent = time.time()
        response = submit(http, wait=30)
        done = time.time()
        assert response.status_code == 200, response.text[:300]
        job_id = response.headers.get("X-Job-Id") or _last_job_id(http)
        samples.append(Sample(job_id, sent, done, done))
    return samples


def _last_job_id(http: httpx.Client) -> str:
    return http.get("/jobs", params={"limit": 1}).json()["items"][0]["id"]


def rows(database_url: str, ids: list[str]) -> dict[str, dict[str, float | None]]:
    """The jobs' timestamps as wall-clock seconds."""
    engine = create_engine(database_url)
    found: dict[str, dict[str, float | None]] = {}
    with engine.connect() as conn:
        for job_id in ids:
            row = (
                conn.execute(
                    text(
                        "SELECT created_at, dispatched_at, started_at, finished_at FROM jobs WHERE id = :id"
                    ),
                    {"id": job_id},
                )
                .mappings()
                .one()
            )
            found[job_id] = {key: _seconds(value) for key, value in row.items()}
    engine.dispose()
    return found


def _seconds(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    if value.tzinfo is None:  # stored as UTC without a zone (SQLite)
        from datetime import UTC

        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def ms(values: list[float]) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)
    p50 = statistics.median(ordered) * 1000
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000
    return f"p50 {p50:7.1f}  p95 {p95:7.1f}"


def report(run: Run, times: dict[str, dict[str, float | None]], fit_seconds: float) -> dict[str, object]:
    def gaps(start: str, stop: str) -> list[float]:
        out = []
        for s in run.samples:
            t = {**times[s.job_id], "sent": s.sent, "accepted": s.accepted, "done": s.done}
            if t.get(start) is not None and t.get(stop) is not None:
                out.append(t[stop] - t[start])  # type: ignore[operator]
        return out

    phases = [
        ("submit -> done (client)", "sent", "done"),
        ("  request sent -> row created", "sent", "created_at"),
        ("  created -> dispatched_at", "created_at", "dispatched_at"),
        ("  created -> started (claim)", "created_at", "started_at"),
        ("  started -> finished (worker)", "started_at", "finished_at"),
        ("  finished -> answered/seen", "finished_at", "done"),
        ("  commit notified -> answered/seen", "notified", "done"),
    ]
    if run.mode == "poll":
        phases.insert(1, ("  202 round trip", "sent", "accepted"))
    fit_ms = fit_seconds * 1000
    print(f"\n{run.deployment} / {run.mode}  ({len(run.samples)} jobs; fit in-process {fit_ms:.1f} ms)")
    out: dict[str, object] = {}
    for label, start, stop in phases:
        values = gaps(start, stop)
        print(f"  {label:34s} {ms(values)} ms")
        if values:
            out[label.strip()] = {
                "p50_ms": round(statistics.median(values) * 1000, 2),
                "p95_ms": round(sorted(values)[min(len(values) - 1, int(0.95 * len(values)))] * 1000, 2),
            }
    return out


def fit_in_process(repeats: int = 20) -> float:
    """Median time of the job's computation itself (load CSV, fit, predict, metrics) in this process."""
    from api.endpoint_params import GbdtClassificationParams
    from shared.ml.pipeline import run
    from shared.settings import Settings

    spec = GbdtClassificationParams(**PARAMS).to_spec()
    settings = Settings()
    limits, threads = settings.limits(), settings.model_threads  # as the worker runs it
    if threads is not None:  # the worker's pool processes cap OpenMP and BLAS too (worker/app.py)
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads)
    stored = canonical(CSV)  # the upload as the worker reads it
    run(stored, spec, limits, n_threads=threads)
    took = []
    for _ in range(repeats):
        started = time.perf_counter()
        run(stored, spec, limits, n_threads=threads)
        took.append(time.perf_counter() - started)
    return statistics.median(took)


class CommitListener:
    """When this process heard each job's finishing commit (Postgres LISTEN on the service's channel; the
    code before notifications sends none): the gap from it to the answer is the API's waiting cost."""

    def __init__(self, database_url: str) -> None:
        self.heard: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if database_url.startswith("postgresql"):
            dsn = database_url.replace("postgresql+psycopg://", "postgresql://")
            self._thread = threading.Thread(target=self._listen, args=(dsn,), daemon=True)
            self._thread.start()

    def _listen(self, dsn: str) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("LISTEN fitexplain_jobs")
            while not self._stop.is_set():
                for notification in conn.notifies(timeout=0.2):
                    job_id, _ = parse_notification(notification.payload)
                    self.heard[job_id] = time.time()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def user_client(base_url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def report_run(run: Run, database_url: str, listener: CommitListener, fit: float) -> dict[str, object]:
    """`report` of a run, its jobs' timestamps read from the database and the listener's notifications."""
    times = rows(database_url, [sample.job_id for sample in run.samples])
    for job_id, row in times.items():
        row["notified"] = listener.heard.get(job_id)
    return report(run, times, fit)


def measure(deployment: str, base_url: str, token: str, database_url: str, n: int, fit: float) -> dict:
    http = user_client(base_url, token)
    run_poll(http, WARMUP)
    listener = CommitListener(database_url)
    results: dict[str, object] = {}
    try:
        for mode, runner in (("poll", run_poll), ("wait", run_wait)):
            results[mode] = report_run(Run(deployment, mode, runner(http, n)), database_url, listener, fit)
    finally:
        listener.stop()
        http.close()
    return results


def measure_interleaved(stacks: dict[str, tuple[str, str, str]], n: int, fit: float) -> dict:
    """The same jobs on several deployments at once, one job at a time, taking turns (the order rotates
    every round): a slow minute of a noisy machine then slows every deployment alike, and each round
    gives a paired difference. Rounds of `wait=30` jobs, then rounds of polled ones."""
    clients = {label: user_client(url, token) for label, (url, token, _) in stacks.items()}
    listeners = {label: CommitListener(database_url) for label, (_, _, database_url) in stacks.items()}
    labels = list(stacks)
    results: dict[str, object] = {}
    try:
        for http in clients.values():
            run_poll(http, WARMUP)
        for mode, runner in (("wait", run_wait), ("poll", run_poll)):
            runs = {label: Run(f"pg+redis {label}", mode) for label in labels}
            for round_number in range(n):
                shift = round_number % len(labels)
                for label in labels[shift:] + labels[:shift]:
                    runs[label].samples.extend(runner(clients[label], 1))
            for label, run in runs.items():
                results[f"pg {label} {mode}"] = report_run(run, stacks[label][2], listeners[label], fit)
            if len(labels) == 2:
                first, second = (runs[label].samples for label in labels)
                differences = [
                    (b.done - b.sent) - (a.done - a.sent) for a, b in zip(first, second, strict=True)
                ]
                faster = sum(difference < 0 for difference in differences)
                print(
                    f"\n{mode}: {labels[1]} - {labels[0]}, paired by round: median "
                    f"{statistics.median(differences) * 1000:+.1f} ms; {labels[1]} faster in {faster} of "
                    f"{len(differences)} rounds"
                )
                results[f"pg {mode} paired median difference ms"] = round(
                    statistics.median(differences) * 1000, 2
                )
    finally:
        for listener in listeners.values():
            listener.stop()
        for http in clients.values():
            http.close()
    return results


def pg_interleaved(codes: list[tuple[str, Path]], n: int, fit: float) -> dict:
    with contextlib.ExitStack() as running:
        stacks = {}
        for label, code in codes:
            env = {**SERVICE_INTERVALS, "PYTHONPATH": pythonpath(code.resolve())}
            with contextlib.chdir(code):  # processes start in the code's directory (see main)
                stack, client = running.enter_context(running_stack(n_workers=1, extra_env=env))
            token = client.http.headers["Authorization"].split()[1]
            stacks[label] = (stack.url, token, stack.database_url)
        return measure_interleaved(stacks, n, fit)


def pythonpath(code: Path) -> str:
    return os.pathsep.join(filter(None, [str(code), os.environ.get("PYTHONPATH")]))


def pg(label: str, code: Path, n: int, fit: float) -> dict:
    env = {**SERVICE_INTERVALS, "PYTHONPATH": pythonpath(code)}
    with running_stack(n_workers=1, extra_env=env) as (stack, client):
        token = client.http.headers["Authorization"].split()[1]
        return measure(f"pg+redis {label}", stack.url, token, stack.database_url, n, fit)


@contextlib.contextmanager
def embedded_serve(code: Path) -> Iterator[tuple[str, str, str]]:
    tmp = Path(tempfile.mkdtemp(prefix="fx_latency_"))
    env = {
        "FITEXPLAIN_MAX_RUNNING_JOBS_PER_USER": "1000",
        "FITEXPLAIN_MAX_SUBMISSIONS_PER_MINUTE": "100000",
        "PYTHONPATH": pythonpath(code),
    }
    try:
        with start_embedded_serve(tmp, env, startup=120) as serve:
            token = serve.token("bench")
            time.sleep(3)  # the workers import the ML stack
            yield serve.url, token, f"sqlite:///{tmp / 'home' / 'fitexplain.db'}"
    finally:
        print(f"serve stopped (log in {tmp / 'serve.log'})", file=sys.stderr)


def embedded(label: str, code: Path, n: int, fit: float) -> dict:
    with embedded_serve(code) as (url, token, database_url):
        return measure(f"embedded {label}", url, token, database_url, n, fit)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--only", choices=["pg", "embedded"])
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a checkout of the code to compare with (e.g. `git archive <commit> | tar -x -C DIR`): "
        "each deployment runs it, then this repository's code, one after the other",
    )
    parser.add_argument(
        "--interleave",
        action="store_true",
        help="with --baseline, on Postgres + Redis only: run both deployments at once and take turns, "
        "job by job, instead of one after the other (differences of a few ms need this on a noisy machine)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)  # stop what was started, also on SIGTERM
    fit = fit_in_process()
    codes = [("before", args.baseline), ("after", REPO)] if args.baseline else [("", REPO)]
    results: dict[str, object] = {"fit_in_process_ms": round(fit * 1000, 2)}
    if args.interleave:
        if not args.baseline:
            parser.error("--interleave compares two deployments: give --baseline DIR")
        results.update(pg_interleaved(codes, args.jobs, fit))
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
        return
    for name, deployment in (("pg", pg), ("embedded", embedded)):
        if args.only in (None, name):
            for label, code in codes:
                # Processes start in the code's directory: alembic (run by serve) puts "." on sys.path.
                with contextlib.chdir(code):
                    results[f"{name} {label}".strip()] = deployment(label, code.resolve(), args.jobs, fit)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
