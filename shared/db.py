"""The database engine and sessions, built once per process from the settings."""

from __future__ import annotations

import select
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, Executable, create_engine, event, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from shared.settings import get_settings


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    # A short connect timeout lets the API answer 503 quickly when Postgres is down.
    engine = create_engine(url, pool_size=10, max_overflow=20, connect_args={"connect_timeout": 3})
    event.listen(engine, "checkout", _refuse_hung_up)
    return engine


def _refuse_hung_up(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Instead of `pool_pre_ping` (a round trip at every checkout, four on a trivial job's path): a
    pooled connection is idle, so the server has sent it nothing unless it hung up. Postgres ends a
    backend it stops or terminates with a FATAL message and a FIN, which make the socket readable: such
    a connection is discarded, and the pool hands out a new one. A connection that dies silently (a
    network cut) fails its first statement, as it could just after a ping."""
    try:
        descriptor = dbapi_connection.fileno()
    except Exception as exc:  # psycopg: the connection is already closed
        raise DisconnectionError("this pooled connection is closed") from exc
    poller = select.poll()
    poller.register(descriptor, select.POLLIN | select.POLLERR | select.POLLHUP)
    if poller.poll(0):
        raise DisconnectionError("the server closed this pooled connection")


@lru_cache
def get_engine() -> Engine:
    return make_engine(get_settings().database_url)


@lru_cache
def get_sessionmaker() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = get_sessionmaker()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def read_scope() -> Iterator[Session]:
    """A session for reads only, each statement in autocommit: no BEGIN and no COMMIT, two of the round
    trips of a small job's few dozen. Statements do not share a snapshot: for reads that need none (a
    token, a job's status, the early limit counts that `reserve_submission` checks again under a lock)."""
    session = Session(bind=_autocommit(get_engine()), expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()


@lru_cache(maxsize=1)
def _autocommit(engine: Engine) -> Engine:
    """`engine` running each statement in autocommit: a view sharing its pool, built once per engine."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def rows_changed(session: Session, statement: Executable) -> int:
    """How many rows an UPDATE or DELETE matched. `Session.execute` is typed to return a plain Result;
    a DML statement's is a CursorResult, which alone has the count."""
    return cast(CursorResult[Any], session.execute(statement)).rowcount


def on_postgres(session: Session) -> bool:
    """Whether the session's database is Postgres (else SQLite, the embedded default)."""
    return session.get_bind().dialect.name == "postgresql"


def commit_without_flush_wait(session: Session) -> None:
    """Let this transaction's commit return before Postgres has flushed it to disk (~5 ms less per
    commit): still atomic, but a crash of Postgres may lose it. Only for records that are repaired anyway."""
    if on_postgres(session):
        session.execute(text("SET LOCAL synchronous_commit = off"))
