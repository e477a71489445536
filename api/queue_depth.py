"""How many job messages wait for a worker: the broker's Redis lists, or the database's queued jobs when
there is no Redis to ask. Read by /metrics and by the dashboard's overview."""

from __future__ import annotations

from functools import lru_cache

import redis
from sqlalchemy.orm import Session

from api.prometheus import queued_jobs
from shared.settings import get_settings

# kombu's Redis transport keeps one list per priority step; the first is the queue's own name.
REDIS_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


@lru_cache
def _redis() -> redis.Redis | None:
    url = get_settings().broker_url
    if not url.startswith(("redis://", "rediss://")):
        return None
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)


def queue_depth(session: Session) -> int:
    """Messages waiting in Redis in the small and large queues; without Redis, the jobs still queued in
    the database."""
    client = _redis()
    if client is None:
        return queued_jobs(session)
    settings = get_settings()
    keys = [
        queue + suffix
        for queue in (settings.queue, settings.large_queue)
        for suffix in REDIS_PRIORITY_SUFFIXES
    ]
    pipeline = client.pipeline(transaction=False)  # the eight lengths in one round trip
    for key in keys:
        pipeline.llen(key)
    try:
        return sum(int(length) for length in pipeline.execute())
    except redis.RedisError:  # the broker is down: the database still knows what waits
        return queued_jobs(session)
