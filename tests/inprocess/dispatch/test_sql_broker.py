"""The embedded broker (a SQLite file) is kombu's SQLAlchemy transport polling every POLL_SECONDS."""

from __future__ import annotations

from pathlib import Path

from celery import Celery

from shared.dispatch.queue import celery_config
from shared.dispatch.sql_broker import POLL_SECONDS, Transport
from shared.settings import Settings


def test_the_embedded_broker_delivers_through_the_fast_polling_transport(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'fitexplain.db'}",
        broker_url=f"sqla+sqlite:///{tmp_path / 'broker.db'}",
    )
    app = Celery("embedded-broker-test")
    app.conf.update(celery_config(settings))
    with app.connection_for_write() as connection:
        assert isinstance(connection.transport, Transport)
        assert connection.transport.polling_interval == POLL_SECONDS
        queue = connection.SimpleQueue("jobs")
        queue.put({"job_id": "abc"})
        assert queue.get(timeout=5).payload == {"job_id": "abc"}
        queue.close()
    assert (tmp_path / "broker.db").exists()


def test_other_brokers_are_left_to_celery() -> None:
    config = celery_config(Settings(broker_url="redis://127.0.0.1:6379/7", database_url="sqlite://"))
    assert config["broker_url"] == "redis://127.0.0.1:6379/7"
    assert "broker_transport" not in config
