"""/metrics in Prometheus' text format: jobs by status, failures by code, queue depth, recent durations."""

from __future__ import annotations

from functools import lru_cache

import redis
from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry
from sqlalchemy.orm import Session

from api.prometheus import job_registry, queued_jobs
from shared.db import get_sessionmaker
from shared.settings import get_settings
from shared.store import workers

router = APIRouter(tags=["health"])

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
    try:
        return sum(int(client.llen(key)) for key in keys)  # type: ignore[arg-type]
    except redis.RedisError:  # the broker is down: the database still knows what waits
        return queued_jobs(session)


def workers_alive(session: Session) -> int:
    return workers.alive_count(session, get_settings().stale_after_seconds)


@lru_cache
def _registry() -> CollectorRegistry:
    return job_registry(get_sessionmaker(), queue_depth, workers_alive)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"description": "Prometheus text exposition format", "content": {"text/plain": {}}}},
)
async def metrics() -> Response:
    """Scraped by Prometheus; computed from the job table on each request."""
    body = await run_in_threadpool(generate_latest, _registry())
    return Response(body, media_type=CONTENT_TYPE_LATEST)
