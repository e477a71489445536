"""Run the real service as ordinary processes for tests: a fresh Postgres database, a Redis queue of
its own, Celery worker processes and the uvicorn API, all configured only through FITEXPLAIN_* variables.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest
import redis
from sqlalchemy.orm import Session

from api.dashboard.session import csrf_token
from shared import settings as service_settings
from shared.auth import create_token
from shared.blobs.store import BlobStore, blob_store
from shared.db import make_engine
from tests.databases import create_migrated_database, drop_database

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DATA = REPO / "tests" / "data"
# The API imports for a few seconds on a quiet machine, for over a minute on a loaded one.
API_START_TIMEOUT = 180
REDIS_URL = os.environ.get("FITEXPLAIN_TEST_REDIS", "redis://127.0.0.1:6379/7")


@dataclass(frozen=True)
class Host:
    """A machine of a cluster on this one: a Unix user of its own and a FITEXPLAIN_HOME only it may enter
    (tests/cluster/hosts.py makes them)."""

    user: str
    home: Path

    def env(self) -> dict[str, str]:
        """What differs between machines: the home (and the caches that libraries put under HOME)."""
        return {
            "FITEXPLAIN_HOME": str(self.home / "fitexplain"),
            "HOME": str(self.home),
            "NUMBA_CACHE_DIR": str(self.home / "numba"),
            "MPLCONFIGDIR": str(self.home / "matplotlib"),
            "XDG_CACHE_HOME": str(self.home / "cache"),
        }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Stack:
    """One isolated deployment: its own database, queue name and ports."""

    tmp: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    name: str = field(default_factory=lambda: f"fx_test_{uuid.uuid4().hex[:10]}")
    port: int = field(default_factory=free_port)
    api: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    database_url: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, host: Host | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "FITEXPLAIN_DATABASE_URL": self.database_url,
                "FITEXPLAIN_BROKER_URL": REDIS_URL,
                "FITEXPLAIN_QUEUE": self.name,
                "FITEXPLAIN_HOME": str(self.tmp / "home"),
                "FITEXPLAIN_PORT": str(self.port),
                "FITEXPLAIN_SWEEP_SECONDS": "1",
                "FITEXPLAIN_WORKER_CORES": "2",  # same-host fan-out decided alike on any machine
                "FITEXPLAIN_MAX_RUNNING_JOBS_PER_USER": "1000",
                "FITEXPLAIN_MAX_SUBMISSIONS_PER_MINUTE": "100000",
                "FITEXPLAIN_MAX_REJECTED_UPLOADS_PER_MINUTE": "100000",
                "FITEXPLAIN_WEBHOOK_ALLOW_PRIVATE": "true",  # test receivers listen on 127.0.0.1
                "FITEXPLAIN_WEBHOOK_POLL_SECONDS": "0.2",
                "FITEXPLAIN_WEBHOOK_RETRY_SCHEDULE": "0.3,0.5,1",  # three quick retries, then failed
                "FITEXPLAIN_WEBHOOK_TIMEOUT": "5",
                # tests.webhook_resolver stands in for DNS for *.rebind.test and *.loopback.test hosts
                "FITEXPLAIN_WEBHOOK_RESOLVER": "tests.webhook_resolver:rebinding",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        if host is not None:
            env.update(host.env())
        return env

    def _popen(
        self, argv: list[str], log_name: str, host: Host | None, **kwargs: object
    ) -> subprocess.Popen[bytes]:
        """Start one of the stack's processes, as `host`'s user with its home when given."""
        log = open(self.tmp / log_name, "ab")  # noqa: SIM115 - kept open for the process
        as_user = {"user": host.user, "group": host.user, "extra_groups": []} if host is not None else {}
        return subprocess.Popen(
            argv,
            env=self.env(host),
            stdout=log,
            stderr=subprocess.STDOUT,
            **as_user,
            **kwargs,  # type: ignore[call-overload]
        )

    def blob_store(self) -> BlobStore:
        """The blob store the stack's processes use (a local directory under its home, or a bucket)."""
        env = self.env()
        settings = service_settings.Settings(
            home=Path(env["FITEXPLAIN_HOME"]),
            database_url=self.database_url,
            storage_url=env.get("FITEXPLAIN_STORAGE_URL", ""),
            storage_options=json.loads(env.get("FITEXPLAIN_STORAGE_OPTIONS") or "{}"),
        )
        return blob_store(settings)

    @contextmanager
    def as_this_process(self) -> Iterator[None]:
        """This test process configured as the stack's processes are (settings, blob store), for tests
        that call the job store directly on the stack's database."""
        with pytest.MonkeyPatch.context() as patch:
            for key, value in self.env().items():
                if key.startswith(("FITEXPLAIN_", "AWS_")):
                    patch.setenv(key, value)
            service_settings.get_settings.cache_clear()
            try:
                yield
            finally:
                service_settings.get_settings.cache_clear()
        service_settings.get_settings.cache_clear()

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [str(BIN / "fitexplain"), *args], env=self.env(), capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            raise RuntimeError(f"fitexplain {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout.strip()

    def setup(self) -> Stack:
        """The stack's database, at the latest schema (`fitexplain migrate` is tested on its own)."""
        self.database_url = create_migrated_database(self.name)
        return self

    def start_api(self, *args: str, host: Host | None = None) -> None:
        """Start the API and wait for it to answer. If it never does, the whole stack is stopped before the
        error is raised: a fixture whose setup fails runs no teardown, and its processes would otherwise
        live (and load the machine) until the session ends."""
        self.api = self._popen([str(BIN / "fitexplain"), "api", *args], f"api-{self.port}.log", host)
        try:
            self._wait_for_api()
        except BaseException:
            self.stop()
            raise

    def _wait_for_api(self) -> None:
        assert self.api is not None
        deadline = time.monotonic() + API_START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.api.poll() is not None:
                raise RuntimeError(f"API exited: {(self.tmp / f'api-{self.port}.log').read_text()[-3000:]}")
            time.sleep(0.2)
        raise RuntimeError(f"API did not answer /healthz within {API_START_TIMEOUT} s")

    def start_worker(
        self, concurrency: int = 1, queue: str = "all", host: Host | None = None
    ) -> subprocess.Popen[bytes]:
        """A worker process taking jobs of one queue ("small", "large") or of both ("all"), as `host`'s user
        with its home when given."""
        argv = [str(BIN / "fitexplain"), "worker", f"--concurrency={concurrency}", f"--queue={queue}"]
        proc = self._popen(
            [*argv, "--loglevel=info"], f"worker-{len(self.workers)}.log", host, start_new_session=True
        )
        self.workers.append(proc)
        return proc

    def wait_for_workers(self, count: int, timeout: float = 120) -> None:
        """Wait until `count` worker pool processes have registered (a job fans out only to workers that
        are in the workers table when its explanation starts)."""
        dsn = self.database_url.replace("postgresql+psycopg://", "postgresql://")
        deadline = time.monotonic() + timeout
        while True:
            with psycopg.connect(dsn) as conn:
                found = conn.execute("SELECT count(*) FROM workers").fetchone()
            if found is not None and found[0] >= count:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{found} of {count} workers registered after {timeout} s")
            time.sleep(0.2)

    def stop_worker(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
        """Stop a worker and its pool children (SIGKILL goes to the whole process group)."""
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def stop(self) -> None:
        for proc in self.workers:
            self.stop_worker(proc)
        if self.api is not None and self.api.poll() is None:
            self.api.terminate()
            try:
                self.api.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.api.kill()
        purge_queue(self.name)
        drop_database(self.name)

    def token(self, user: str, admin: bool = False) -> str:
        """A new token of `user` (made an admin if `admin`), written as `fitexplain create-token` writes
        it, without starting the command (tests of the command itself call `cli`)."""
        ttl_days = self.env().get("FITEXPLAIN_TOKEN_TTL_DAYS")
        engine = make_engine(self.database_url)
        try:
            with Session(engine) as session, session.begin():
                return create_token(session, user, admin=admin, ttl_days=int(ttl_days) if ttl_days else None)
        finally:
            engine.dispose()


def purge_queue(queue: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"*{queue}*"):
        client.delete(key)


class Client:
    """An HTTP client for one user of a Stack."""

    def __init__(self, base_url: str, token: str) -> None:
        self.http = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=120)

    def submit(self, endpoint: str, csv: str | bytes, **params: object) -> httpx.Response:
        content = (DATA / csv).read_bytes() if isinstance(csv, str) else csv
        query = {k: str(v) for k, v in params.items()}
        return self.http.post(f"/{endpoint}", params=query, files={"file": ("data.csv", content, "text/csv")})

    def wait(self, job_id: str, timeout: float = 300) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        delay = 0.1
        while time.monotonic() < deadline:
            job = self.http.get(f"/jobs/{job_id}").json()
            if job["status"] in ("succeeded", "failed", "cancelled"):
                return job
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)
        raise TimeoutError(f"job {job_id} did not finish in {timeout} s")

    def result(self, job_id: str) -> dict[str, object]:
        response = self.http.get(f"/jobs/{job_id}/result")
        response.raise_for_status()
        return response.json()

    def run(self, endpoint: str, csv: str | bytes, **params: object) -> dict[str, object]:
        response = self.submit(endpoint, csv, **params)
        assert response.status_code == 202, response.text
        job = self.wait(response.json()["id"])
        assert job["status"] == "succeeded", job
        return self.result(job["id"])


class Browser:
    """A signed-in cookie session, as a browser would hold it."""

    def __init__(self, stack: Stack, token: str) -> None:
        self.token = token
        self.http = httpx.Client(base_url=stack.url, timeout=60)
        response = self.http.post("/dashboard/sign-in", data={"token": token})
        assert response.status_code == 303, response.text
        self.origin = stack.url

    def post(self, path: str, *, csrf: str | None = None, origin: str | None = None) -> httpx.Response:
        headers = {"Origin": origin or self.origin}
        return self.http.post(
            path, data={"csrf": csrf_token(self.token) if csrf is None else csrf}, headers=headers
        )


@dataclass
class EmbeddedServe:
    """A running `fitexplain serve` on the embedded default (SQLite database and broker under its home)."""

    url: str
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes]

    def token(self, user: str) -> str:
        done = subprocess.run(
            [str(BIN / "fitexplain"), "create-token", user],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip().splitlines()[-1]


@contextmanager
def embedded_serve(
    tmp: Path, extra_env: dict[str, str] | None = None, startup: float = 90
) -> Iterator[EmbeddedServe]:
    """`fitexplain serve` with FITEXPLAIN_HOME under `tmp` and no other FITEXPLAIN_* setting from this
    environment (only `extra_env`'s), once /healthz answers; its process group is stopped on exit."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FITEXPLAIN_")}
    env.update({"FITEXPLAIN_HOME": str(tmp / "home"), "FITEXPLAIN_PORT": str(port), "PYTHONUNBUFFERED": "1"})
    env.update(extra_env or {})
    log = tmp / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(BIN / "fitexplain"), "serve"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    serve = EmbeddedServe(f"http://127.0.0.1:{port}", env, log, process)
    try:
        deadline = time.monotonic() + startup
        while True:
            try:
                if httpx.get(f"{serve.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve did not come up:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield serve
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)  # serve gives its workers 10 s, then kills them
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
