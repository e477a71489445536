"""The pool hands out no connection the server has closed (shared/db.py checks the socket at checkout,
instead of a ping round trip)."""

from __future__ import annotations

import time

import psycopg
from sqlalchemy import text

from shared.db import make_engine
from shared.settings import Settings


def dsn(settings: Settings) -> str:
    return settings.database_url.replace("postgresql+psycopg://", "postgresql://")


def test_a_pooled_connection_whose_backend_was_terminated_is_replaced(service_settings: Settings) -> None:
    engine = make_engine(service_settings.database_url)
    try:
        with engine.connect() as connection:
            pid = connection.execute(text("SELECT pg_backend_pid()")).scalar()
        with psycopg.connect(
            dsn(service_settings), autocommit=True
        ) as other:  # the first one is pooled, idle
            other.execute("SELECT pg_terminate_backend(%s)", (pid,))
            gone = "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = %s"
            deadline = time.monotonic() + 30
            while not other.execute(gone, (pid,)).fetchone()[0] and time.monotonic() < deadline:
                time.sleep(0.01)  # the backend ends a moment after it is signalled
        with engine.connect() as connection:  # would fail its first statement if the dead one came back
            assert connection.execute(text("SELECT pg_backend_pid()")).scalar() != pid
    finally:
        engine.dispose()


def test_an_idle_healthy_connection_is_reused(service_settings: Settings) -> None:
    engine = make_engine(service_settings.database_url)
    try:
        with engine.connect() as connection:
            pid = connection.execute(text("SELECT pg_backend_pid()")).scalar()
            connection.execute(text("SELECT pg_notify('fx_pool_test', 'x')"))  # a notice to others only
            connection.commit()
        with engine.connect() as connection:
            assert connection.execute(text("SELECT pg_backend_pid()")).scalar() == pid
    finally:
        engine.dispose()
