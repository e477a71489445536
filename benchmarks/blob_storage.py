"""Storing and reading a job's result in the blob store: a local directory (the baseline) vs an
S3-compatible server (moto on this machine).

Each variant writes the same gzip result bodies as `jobstore.succeed` produces (a row per job, committed),
then reads them back as `GET /jobs/{id}/result` does; it also reports how much the job_results table
grew in Postgres. Needs Postgres like the service tests; the S3 variant needs moto[server] and s3fs.

    PYTHONPATH=. .venv/bin/python benchmarks/blob_storage.py [--jobs 10] [--mb 1,20]
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import orjson

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.databases import create_database, drop_database  # noqa: E402


def result_body_of(megabytes: float) -> bytes:
    """A SHAP-like result (floats) whose gzip body is about `megabytes` MB, as succeed stores it."""
    values = np.random.default_rng(0).normal(size=int(megabytes * 1e6 / 8.5))
    return gzip.compress(orjson.dumps({"values": values}, option=orjson.OPT_SERIALIZE_NUMPY), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10, help="results per variant and size")
    parser.add_argument("--mb", default="1,20", help="gzip result sizes in MB, comma-separated")
    args = parser.parse_args()
    name = f"fx_bench_{uuid.uuid4().hex[:10]}"
    home = tempfile.mkdtemp(prefix="fx-bench-blobs-")
    os.environ["FITEXPLAIN_DATABASE_URL"] = create_database(name)
    os.environ["FITEXPLAIN_HOME"] = home
    try:
        run(args.jobs, [float(mb) for mb in args.mb.split(",")])
    finally:
        from shared.db import get_engine

        get_engine().dispose()
        drop_database(name)


def run(n_jobs: int, sizes: list[float]) -> None:
    from sqlalchemy import text

    from shared.blobs.store import BlobStore, blob_store
    from shared.db import get_engine, session_scope
    from shared.settings import get_settings
    from shared.store.migrate import migrate
    from tests.inprocess.factories import make_job, make_user

    migrate(os.environ["FITEXPLAIN_DATABASE_URL"])
    user_id = make_user("bench")[0]
    stores: dict[str, BlobStore] = {"local blob": blob_store(get_settings())}
    server = None
    try:
        from tests.s3 import moto_server

        server = moto_server()
        s3 = server.__enter__()
        stores["s3 blob (moto)"] = BlobStore(
            f"s3://{s3.new_bucket()}/bench",
            cache_dir=Path(os.environ["FITEXPLAIN_HOME"]) / "cache",
            storage_options=s3.options(),
        )
    except ImportError:
        print("moto or s3fs missing: no S3 variant")

    def table_bytes() -> int:
        with get_engine().connect() as connection:
            return int(connection.scalar(text("SELECT pg_total_relation_size('job_results')")))

    header = ("variant", "MB", "write ms", "read ms", "ratio w", "ratio r", "table MB")
    print(f"{header[0]:<20} " + " ".join(f"{h:>8}" for h in header[1:]))
    try:
        for megabytes in sizes:
            body = result_body_of(megabytes)
            baseline: tuple[float, float] | None = None
            for label, store in stores.items():
                job_ids = [make_job(user_id) for _ in range(n_jobs)]
                before = table_bytes()
                writes = [timed(partial(write, session_scope, store, j, body)) for j in job_ids]
                reads = [timed(partial(read, session_scope, store, j)) for j in job_ids]
                grown = (table_bytes() - before) / 1e6
                w, r = statistics.median(writes) * 1e3, statistics.median(reads) * 1e3
                baseline = baseline or (w, r)
                print(
                    f"{label:<20} {len(body) / 1e6:>8.1f} {w:>8.1f} {r:>8.1f} "
                    f"{w / baseline[0]:>8.2f} {r / baseline[1]:>8.2f} {grown:>9.1f}"
                )
    finally:
        if server is not None:
            server.__exit__(None, None, None)


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def write(session_scope: Callable, store: object, job_id: str, body: bytes) -> None:
    """What succeed does with the body: a blob, then the row."""
    from shared.blobs.store import new_token
    from shared.store.uploads import sha256_hex
    from shared.tables import JobResult

    with session_scope() as session:
        key = f"results/{job_id}/{new_token()}.json.gz"
        store.put_bytes(key, body)  # type: ignore[attr-defined]
        session.add(
            JobResult(
                job_id=job_id, blob_key=key, size_bytes=0, stored_bytes=len(body), sha256=sha256_hex(body)
            )
        )


def read(session_scope: Callable, store: object, job_id: str) -> None:
    """What GET /jobs/{id}/result reads: the row, then its blob."""
    from shared.tables import JobResult

    with session_scope() as session:
        row = session.get(JobResult, job_id)
        assert row is not None
        body = store.get_bytes(row.blob_key)  # type: ignore[attr-defined]
        assert body


if __name__ == "__main__":
    main()
