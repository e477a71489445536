"""/metrics in Prometheus' text format: jobs by status, failures by code, queue depth, recent durations.

The numbers are the whole service's, so they are the operator's: /metrics answers a request whose
socket peer is a loopback address and that carries no forwarding header (a reverse proxy on the same
host adds one), or one with the bearer token FITEXPLAIN_METRICS_TOKEN. A forwarded address never opens it.
"""

from __future__ import annotations

import hmac
import ipaddress
from functools import lru_cache

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry
from sqlalchemy.orm import Session

from api import errors
from api.prometheus import job_registry
from api.queue_depth import queue_depth
from shared.db import get_sessionmaker
from shared.settings import get_settings
from shared.store import workers

router = APIRouter(tags=["health"])

FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


def _loopback_peer(request: Request) -> bool:
    """The socket's peer is this host, and no proxy says it forwards someone else's request. (uvicorn
    replaces the peer by X-Forwarded-For's from a proxy it trusts; the header is then still there.)"""
    if any(name in request.headers for name in FORWARDING_HEADERS):
        return False
    peer = request.client.host if request.client is not None else ""
    try:
        return ipaddress.ip_address(peer).is_loopback
    except ValueError:
        return False


def _bearer_matches(request: Request, expected: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if not expected or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), expected.encode())


def require_operator(request: Request) -> None:
    """401 unless the request comes from this host itself or carries the metrics token."""
    if _loopback_peer(request) or _bearer_matches(request, get_settings().metrics_token):
        return
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        detail="/metrics answers requests from this host (loopback), or with the bearer token set in "
        "FITEXPLAIN_METRICS_TOKEN.",
        headers={"WWW-Authenticate": "Bearer"},
    )


def workers_alive(session: Session) -> int:
    return workers.alive_count(session, get_settings().stale_after_seconds)


@lru_cache
def _registry() -> CollectorRegistry:
    return job_registry(get_sessionmaker(), queue_depth, workers_alive)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"description": "Prometheus text exposition format", "content": {"text/plain": {}}},
        **errors.documented({401: "Not from this host, and without the metrics token (`unauthorized`)."}),
    },
    dependencies=[Depends(require_operator)],
)
async def metrics() -> Response:
    """Scraped by Prometheus; computed from the job table on each request."""
    body = await run_in_threadpool(generate_latest, _registry())
    return Response(body, media_type=CONTENT_TYPE_LATEST)
