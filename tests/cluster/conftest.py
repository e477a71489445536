"""The cluster tier: the API and workers as machines that share nothing on disk (each its own Unix user
and FITEXPLAIN_HOME), talking only through Postgres, Redis and an S3-compatible server (moto) reached
through a fault proxy that a test may cut."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen
from urllib.parse import urlparse

import psycopg
import pytest

from tests.cluster.fault_proxy import FaultProxy, fault_proxy
from tests.cluster.hosts import hosts
from tests.s3 import S3Server
from tests.stack import Client, Host, Stack

# Small fan-out thresholds: the tests' small tables are cut into chunks that several machines compute.
FANOUT = {
    "FITEXPLAIN_FANOUT_MIN_ROWS": "40",
    "FITEXPLAIN_FANOUT_CHUNK_ROWS": "25",
    "FITEXPLAIN_FANOUT_MIN_ROWS_AGNOSTIC": "40",
    "FITEXPLAIN_FANOUT_CHUNK_ROWS_AGNOSTIC": "25",
}


@dataclass
class Cluster:
    """A Stack whose API and workers run on Hosts, with its blobs in a bucket behind `proxy`."""

    stack: Stack
    proxy: FaultProxy
    hosts: dict[str, Host]
    workers: dict[str, Popen[bytes]] = field(default_factory=dict)

    def start_worker(self, name: str) -> Popen[bytes]:
        self.workers[name] = self.stack.start_worker(host=self.hosts[name])
        return self.workers[name]

    def client(self, user: str = "alice") -> Client:
        return Client(self.stack.url, self.stack.token(user))

    def dsn(self) -> str:
        return self.stack.database_url.replace("postgresql+psycopg://", "postgresql://")

    def query(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        with psycopg.connect(self.dsn()) as conn:
            return conn.execute(sql, params).fetchall()

    def log(self) -> str:
        return "\n".join(path.read_text(errors="replace") for path in sorted(self.stack.tmp.glob("*.log")))


@pytest.fixture(scope="module")
def s3_proxy(s3_server: S3Server) -> Iterator[FaultProxy]:
    endpoint = urlparse(s3_server.endpoint)
    with fault_proxy((endpoint.hostname or "127.0.0.1", endpoint.port or 80)) as proxy:
        yield proxy


@contextmanager
def make_cluster(
    tmp: Path,
    s3_server: S3Server,
    proxy: FaultProxy,
    workers: tuple[str, ...],
    extra_env: dict[str, str],
    start_workers: bool = True,
) -> Iterator[Cluster]:
    """The API on host `api` and a host for each name in `workers`, each running one worker (concurrency
    1) unless not `start_workers`; all stopped after."""
    bucket = s3_server.new_bucket()
    through_proxy = S3Server(proxy.url)
    env = {**through_proxy.env(bucket), **extra_env}
    with hosts("api", *workers) as machines:
        stack = Stack(tmp, extra_env=env).setup()
        cluster = Cluster(stack, proxy, machines)
        try:
            stack.start_api(host=machines["api"])
            for name in workers if start_workers else ():
                cluster.start_worker(name)
            yield cluster
        finally:
            stack.stop()
