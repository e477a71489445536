"""Shared fixtures: a real deployment (Postgres, Redis, Celery worker, uvicorn API) for service tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.databases import drop_migrated_template
from tests.stack import Client, Stack

if TYPE_CHECKING:
    from tests.s3 import S3Server


@pytest.fixture(scope="session", autouse=True)
def _migrated_template() -> Iterator[None]:
    """This process's migrated template database (tests.databases), dropped when the session ends."""
    yield
    drop_migrated_template()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    deployment = Stack(tmp_path_factory.mktemp("stack")).setup()
    try:  # stopped even when its API never answers: no worker outlives the session
        deployment.start_worker(concurrency=2)
        deployment.start_api()
        yield deployment
    finally:
        deployment.stop()


@pytest.fixture(scope="session")
def alice(stack: Stack) -> Client:
    return Client(stack.url, stack.token("alice"))


@pytest.fixture(scope="session")
def bob(stack: Stack) -> Client:
    return Client(stack.url, stack.token("bob"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """An S3-compatible server (moto) on a free local port, for the S3 variants of storage tests."""
    from tests.s3 import moto_server  # moto is slow to import: only for the tests that use it

    with moto_server() as server:
        yield server
