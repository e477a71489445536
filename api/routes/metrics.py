"""/metrics in Prometheus' text format: jobs by status, failures by code, queue depth, recent durations."""

from __future__ import annotations

from functools import lru_cache

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry
from sqlalchemy.orm import Session

from api.prometheus import job_registry
from api.queue_depth import queue_depth
from shared.db import get_sessionmaker
from shared.settings import get_settings
from shared.store import workers

router = APIRouter(tags=["health"])


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
