"""Fault-test helpers: our own Redis and Postgres (never the machine's shared ones), stacks that always
stop and their start-up (workers registered before the API takes a job), a job slow enough to be
interrupted, short leases for the tests that wait for one to run out, and the exactly-once check read
from job_events.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
import pytest
import redis

from tests.stack import Client, Stack, free_port
from tests.waiting import wait_until

TERMINAL = ("succeeded", "failed", "cancelled")
START_TIMEOUT = 120  # a cold worker imports the ML stack
# For the tests that wait for a lost worker's lease to run out but do not test the default lease: a
# worker silent for 3 s is lost (the defaults: heartbeat 2 s, stale after 6 s, docs/operations.md).
SHORT_LEASE = {"FITEXPLAIN_HEARTBEAT_SECONDS": "1", "FITEXPLAIN_STALE_AFTER_SECONDS": "3"}
# Gradient boosting of the most trees the API accepts, this deep, on SLOW_CSV fits for several seconds here.
SLOW_TREES = 1000
SLOW_DEPTH = 4


def slow_csv(n_rows: int = 2000, n_features: int = 8, seed: int = 0) -> bytes:
    """A generated binary-classification CSV; with `slow_params()` its job runs for several seconds."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, n_features))
    y = (X[:, 0] + X[:, 1] * X[:, 2] + rng.normal(size=n_rows) > 0).astype(int)
    train = (rng.random(n_rows) < 0.7).astype(int)
    lines = [",".join([f"x{i}" for i in range(n_features)] + ["target", "training_index"])]
    lines += [",".join([f"{v:.4f}" for v in X[r]] + [str(y[r]), str(train[r])]) for r in range(n_rows)]
    return ("\n".join(lines) + "\n").encode()


def slow_params() -> dict[str, object]:
    """gbdtclassification parameters: scikit-learn's single-threaded boosting, many trees, no explanation."""
    return {
        "model_type": "gradientboosting",
        "n_estimators": SLOW_TREES,
        "max_depth": SLOW_DEPTH,
        "interpretability": "none",
    }


class RedisServer:
    """A throw-away redis-server on its own port that a test may kill and restart at will."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = open(self.workdir / f"redis-{self.port}.log", "ab")  # noqa: SIM115 - kept open for the process
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(self.workdir),
                "--maxmemory-policy",
                "noeviction",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        wait_until(self._pings(client), 20, f"redis-server on port {self.port}")

    @staticmethod
    def _pings(client: redis.Redis) -> Callable[[], bool]:
        def ping() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        return ping

    def kill(self) -> None:
        """SIGKILL: the queue's contents are gone, as after a crash without persistence."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} (PostgreSQL server binaries) not installed")
    return path


class PostgresCluster:
    """A private Postgres cluster in a temporary directory, stoppable without touching anyone else's."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="fx_faults_pg_"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0  # initdb refuses to run as root
        if self.as_postgres:
            entry = pwd.getpwnam("postgres")
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str) -> None:
        command = ["runuser", "-u", "postgres", "--", *argv] if self.as_postgres else list(argv)
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            _pg_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w", "start"
        )

    def stop(self) -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(RuntimeError):  # already stopped
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class OwnPostgresStack(Stack):
    """A Stack whose database lives on a private cluster (`admin_dsn`) instead of the shared one."""

    admin_dsn: str = ""

    def setup(self) -> OwnPostgresStack:
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        base = self.admin_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        self.database_url = f"{base}/{self.name}"
        self.cli("migrate")
        return self


def dsn(stack: Stack) -> str:
    return stack.database_url.replace("postgresql+psycopg://", "postgresql://")


def job_row(stack: Stack, job_id: str) -> dict[str, Any]:
    with psycopg.connect(dsn(stack), connect_timeout=3) as conn:
        row = conn.execute(
            "SELECT status, attempts, error_code, error_message, worker FROM jobs WHERE id = %s", (job_id,)
        ).fetchone()
    assert row is not None, f"job {job_id} is not in the database"
    return dict(zip(("status", "attempts", "error_code", "error_message", "worker"), row, strict=True))


def job_events(stack: Stack) -> dict[str, list[str]]:
    """Every job's events in the order they happened."""
    with psycopg.connect(dsn(stack), connect_timeout=3) as conn:
        rows = conn.execute("SELECT job_id, event FROM job_events ORDER BY at, id").fetchall()
    events: dict[str, list[str]] = {}
    for job_id, event in rows:
        events.setdefault(job_id, []).append(event)
    return events


def exactly_once_violations(events: dict[str, list[str]], statuses: dict[str, str]) -> list[str]:
    """Why each job broke "finished exactly once": not finished, finished twice, or started again after."""
    problems = []
    for job_id, status in statuses.items():
        history = events.get(job_id, [])
        terminal = [event for event in history if event in TERMINAL]
        if terminal != [status]:
            problems.append(f"{job_id}: status {status}, terminal events {terminal} ({history})")
            continue
        if "started" in history[history.index(status) :]:
            problems.append(f"{job_id}: started again after {status} ({history})")
    return problems


def assert_finished_exactly_once(stack: Stack, job_ids: list[str]) -> dict[str, list[str]]:
    """Every job is in a terminal state with exactly one terminal event; returns the events."""
    statuses = {job_id: job_row(stack, job_id)["status"] for job_id in job_ids}
    events = job_events(stack)
    problems = exactly_once_violations(events, statuses)
    assert not problems, "\n".join(problems)
    return events


def worker_log(stack: Stack) -> str:
    return "\n".join(path.read_text(errors="replace") for path in sorted(stack.tmp.glob("worker-*.log")))


@pytest.fixture
def stacks(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """A factory of set-up stacks (extra FITEXPLAIN_* settings as keywords), all stopped after the test."""
    made: list[Stack] = []

    def make(kind: type[Stack] = Stack, **fields: Any) -> Stack:
        folder = tmp_path / f"stack{len(made)}"
        folder.mkdir()
        stack = kind(folder, **fields)
        made.append(stack)
        return stack.setup()

    yield make
    for stack in made:
        try:
            stack.stop()
        except Exception as exc:  # a database already gone must not hide the test's own failure
            print(f"stopping {stack.name}: {exc}")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def postgres_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    cluster.start()
    yield cluster
    cluster.remove()


def client_for(stack: Stack, user: str = "alice") -> Client:
    return Client(stack.url, stack.token(user))


def alive(stack: Stack) -> int:
    """How many workers /readyz counts alive."""
    count: int = httpx.get(f"{stack.url}/readyz", timeout=10).json()["workers_alive"]
    return count


def start(stack: Stack, workers: int = 1) -> list[subprocess.Popen[bytes]]:
    """Start `workers` workers (one pool process each, all importing at once) and the API; return once
    /readyz counts them all, so that a job submitted next starts without waiting for an import."""
    stack.start_api()  # before the workers: their cold imports would slow its own start
    started = [stack.start_worker() for _ in range(workers)]
    wait_until(lambda: alive(stack) == workers, START_TIMEOUT, f"{workers} worker(s) to register")
    return started


def running_attempt(stack: Stack, job_id: str, attempt: int = 1) -> Callable[[], dict[str, Any] | None]:
    """A condition: the job's row while attempt `attempt` of it runs, else None."""

    def check() -> dict[str, Any] | None:
        row = job_row(stack, job_id)
        return row if row["status"] == "running" and row["attempts"] == attempt else None

    return check


def start_slow_job(stack: Stack, client: Client) -> tuple[str, dict[str, Any]]:
    """Submit a job that runs for several seconds; return its id and its row once its first attempt runs
    (the row's `worker` names the pool process computing it)."""
    response = client.submit("gbdtclassification", slow_csv(), **slow_params())
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id, wait_until(running_attempt(stack, job_id), START_TIMEOUT, f"job {job_id} to run")


def error_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "ERROR" in line or "Traceback" in line]
