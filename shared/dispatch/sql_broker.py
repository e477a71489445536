"""The embedded broker: kombu's SQLAlchemy transport (messages in a SQLite file), polling its table often.

kombu's virtual transports poll, every second by default: a small job would wait half a second for its
worker. A poll is one indexed SELECT on a local file, so it runs every `POLL_SECONDS` here. The interval
cannot go in `broker_transport_options` (this transport passes those to `create_engine`), and kombu takes
a transport class only from Celery's `broker_transport`, not from a URL prefix: `celery_settings` turns
`sqla+<database url>` into both.
"""

from __future__ import annotations

from kombu.transport.sqlalchemy import Transport as SQLAlchemyTransport

POLL_SECONDS = 0.02
PREFIX = "sqla+"


class Transport(SQLAlchemyTransport):
    polling_interval = POLL_SECONDS


def celery_settings(broker_url: str) -> dict[str, str]:
    """Celery's `broker_url` (and, for the embedded broker, `broker_transport`) for `broker_url`."""
    if broker_url.startswith(PREFIX):
        return {"broker_url": broker_url.removeprefix(PREFIX), "broker_transport": f"{__name__}:Transport"}
    return {"broker_url": broker_url}
