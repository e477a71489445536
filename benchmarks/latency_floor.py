"""The least a trivial job can cost in this service's design on this machine: the floor under latency.py.

    .venv/bin/python benchmarks/latency_floor.py [--jobs 200]

The design fixes the path of every job (docs/architecture.md, "A job's life"): an HTTP request to a
FastAPI app under uvicorn, a job row inserted and committed in Postgres (the source of truth), a Celery
message carrying only the id through Redis, a prefork worker that claims the row (a committed UPDATE) and
records the result (a committed UPDATE with a NOTIFY), and the API answering `wait=` when it hears the
notification. This script runs exactly that path with the same libraries and nothing else: no
authentication, no CSV parsing or validation, no fairness, no blob store, no model. Then, in this
process, the model the trivial job fits (iris, xgboost, `/gbdtclassification` defaults) through
xgboost's scikit-learn wrapper, and the service's whole computation (`shared.ml.pipeline.run`).

It prints the floor's p50 / p95, the fit's, and their sum: what latency.py's trivial job could reach
here if the service itself cost nothing on top of its libraries.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import psycopg  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402  (module level: the endpoint's annotations name them)

from benchmarks.latency import CSV, ms  # noqa: E402
from tests.canonical import canonical  # noqa: E402  (the trivial job's upload, and its p50 / p95 format)

if TYPE_CHECKING:
    from celery import Celery

ADMIN_DSN = os.environ.get("FLOOR_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
BROKER = os.environ.get("FLOOR_BROKER", "redis://127.0.0.1:6379/14")
CHANNEL = "floor_jobs"
PORT = 8791


def celery_app(dsn: str) -> Celery:
    from celery import Celery

    app = Celery("floor", broker=BROKER)
    app.conf.update(
        task_ignore_result=True,
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
    )
    state: dict[str, psycopg.Connection] = {}

    @app.task(name="floor.run")
    def run(job_id: str) -> None:
        conn = state.get("conn")
        if conn is None:
            conn = state["conn"] = psycopg.connect(dsn)
        with conn.transaction():  # claim
            conn.execute("UPDATE jobs SET status = 'running' WHERE id = %s AND status = 'queued'", (job_id,))
        with conn.transaction():  # the result, and the notification sent at its commit
            conn.execute("UPDATE jobs SET status = 'succeeded', result = '{}' WHERE id = %s", (job_id,))
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, job_id))

    return app


def serve_api(dsn: str) -> None:
    import uvicorn

    celery = celery_app(dsn)
    waiting: dict[str, asyncio.Future] = {}
    state: dict[str, psycopg.AsyncConnection] = {}

    async def listen() -> None:
        conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        await conn.execute(f"LISTEN {CHANNEL}")
        async for note in conn.notifies():
            future = waiting.pop(note.payload, None)
            if future is not None and not future.done():
                future.set_result(None)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state["conn"] = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        task = asyncio.create_task(listen())
        yield
        task.cancel()
        await state["conn"].close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/jobs")
    async def submit(request: Request) -> dict:
        form = await request.form()  # the multipart upload, read as the service reads it
        await form["file"].read()
        job_id = uuid.uuid4().hex
        done = asyncio.get_running_loop().create_future()
        waiting[job_id] = done
        # one request at a time here: one connection, each INSERT its own committed transaction
        await state["conn"].execute("INSERT INTO jobs (id, status) VALUES (%s, 'queued')", (job_id,))
        await asyncio.to_thread(celery.send_task, "floor.run", args=[job_id])
        await asyncio.wait_for(done, 30)
        return {"id": job_id, "status": "succeeded"}

    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning")


def serve_worker(dsn: str) -> None:
    celery_app(dsn).worker_main(["worker", "--pool=prefork", "--concurrency=1", "--loglevel=WARNING"])


def measure_floor(jobs: int) -> list[float]:
    def submit() -> None:
        client.post("/jobs", files={"file": ("iris.csv", CSV, "text/csv")}).raise_for_status()

    took = []
    with httpx.Client(base_url=f"http://127.0.0.1:{PORT}", timeout=30) as client:
        for _ in range(20):  # warm: connections, the pool process
            submit()
        for _ in range(jobs):
            started = time.perf_counter()
            submit()
            took.append(time.perf_counter() - started)
    return took


def measure_fit(repeats: int) -> tuple[list[float], list[float]]:
    import numpy as np
    import pandas as pd
    import xgboost

    from api.endpoint_params import GbdtClassificationParams
    from shared.ml.pipeline import run
    from shared.settings import Settings

    frame = pd.read_csv(REPO / "tests" / "data" / "iris_dataset2.csv")
    train = frame[frame["training_index"] == 1]
    X = train.drop(columns=["target", "training_index"]).to_numpy(np.float64)
    y = train["target"].to_numpy()
    spec = GbdtClassificationParams(model_type="xgboost").to_spec()
    settings = Settings()
    stored = canonical(CSV)  # the upload as the worker reads it
    fits, runs = [], []
    for _ in range(repeats + 3):
        started = time.perf_counter()
        xgboost.XGBClassifier(n_estimators=100, max_depth=3, learning_rate=0.1, n_jobs=1).fit(X, y)
        fits.append(time.perf_counter() - started)
        started = time.perf_counter()
        run(stored, spec, settings.limits(), n_threads=1)
        runs.append(time.perf_counter() - started)
    return fits[3:], runs[3:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--role", choices=["api", "worker"], help=argparse.SUPPRESS)
    parser.add_argument("--dsn", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "api":
        return serve_api(args.dsn)
    if args.role == "worker":
        return serve_worker(args.dsn)

    database = f"fx_floor_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {database}")
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + f"/{database}"
    processes: list[subprocess.Popen] = []
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE jobs (id text PRIMARY KEY, status text NOT NULL, result jsonb)")
        for role in ("worker", "api"):
            command = [sys.executable, __file__, "--role", role, "--dsn", dsn]
            processes.append(subprocess.Popen(command, cwd=REPO))
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.post(
                    f"http://127.0.0.1:{PORT}/jobs", files={"file": ("iris.csv", CSV)}, timeout=5
                ).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        floor = measure_floor(args.jobs)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {database}")
    fits, runs = measure_fit(30)
    print(f"\nfloor of the design ({args.jobs} jobs, wait for the notification) {ms(floor)} ms")
    print(f"xgboost fit alone (iris, 100 trees, sklearn wrapper)        {ms(fits)} ms")
    print(f"the service's computation (shared.ml.pipeline.run)           {ms(runs)} ms")
    print(
        f"floor + fit: {1000 * (statistics.median(floor) + statistics.median(fits)):.1f} ms; "
        f"floor + computation: {1000 * (statistics.median(floor) + statistics.median(runs)):.1f} ms"
    )


if __name__ == "__main__":
    main()
