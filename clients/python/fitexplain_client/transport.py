"""HTTP with the retry rules: 429 and 503 are retried with backoff honouring Retry-After; network errors
are retried for idempotent requests (GET, DELETE) only, as a POST may have created a job already.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx

from fitexplain_client.errors import AuthenticationError, error_from_response, retry_after_seconds
from fitexplain_client.version import __version__

RETRY_STATUSES = frozenset({429, 503})
# Drop idle connections well before uvicorn closes them (5 s): a pooled connection reused just as the
# server closes it fails with a ReadError, which a POST may not retry (e.g. after a 5 s Retry-After).
POOL_LIMITS = httpx.Limits(keepalive_expiry=2.0)
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    backoff: float = 0.5  # first delay in seconds, doubled each time, with jitter
    max_delay: float = 30.0
    max_retry_after: float = 120.0  # the server's Retry-After is honoured up to this

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        return min(self.backoff * 2.0**attempt, self.max_delay) * random.uniform(0.5, 1.0)


def headers(token: str | None) -> dict[str, str]:
    found = {"User-Agent": f"fitexplain-client/{__version__}", "Accept-Encoding": "gzip"}
    if token:
        found["Authorization"] = f"Bearer {token}"
    return found


def _should_retry_status(response: httpx.Response, attempt: int, policy: RetryPolicy) -> bool:
    return response.status_code in RETRY_STATUSES and attempt + 1 < policy.attempts


def _should_retry_error(method: str, attempt: int, policy: RetryPolicy) -> bool:
    return method.upper() in IDEMPOTENT_METHODS and attempt + 1 < policy.attempts


def _checked(response: httpx.Response, token: str | None) -> httpx.Response:
    if response.is_success:
        return response
    error = error_from_response(response)
    if isinstance(error, AuthenticationError) and not token:
        error.message += " (no token: pass token=, set FITEXPLAIN_TOKEN or run `fitexplain login`)"
    raise error


class SyncTransport:
    def __init__(self, base_url: str, token: str | None, timeout: float, policy: RetryPolicy) -> None:
        self.token = token
        self.policy = policy
        self.http = httpx.Client(
            base_url=base_url, headers=headers(token), timeout=timeout, limits=POOL_LIMITS
        )

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx.TransportError:
                if not _should_retry_error(method, attempt, self.policy):
                    raise
                time.sleep(self.policy.delay(attempt, None))
            else:
                if not _should_retry_status(response, attempt, self.policy):
                    return _checked(response, self.token)
                time.sleep(self.policy.delay(attempt, retry_after_seconds(response)))
            attempt += 1

    def close(self) -> None:
        self.http.close()


class AsyncTransport:
    def __init__(self, base_url: str, token: str | None, timeout: float, policy: RetryPolicy) -> None:
        self.token = token
        self.policy = policy
        self.http = httpx.AsyncClient(
            base_url=base_url, headers=headers(token), timeout=timeout, limits=POOL_LIMITS
        )

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = await self.http.request(method, path, **kwargs)
            except httpx.TransportError:
                if not _should_retry_error(method, attempt, self.policy):
                    raise
                await asyncio.sleep(self.policy.delay(attempt, None))
            else:
                if not _should_retry_status(response, attempt, self.policy):
                    return _checked(response, self.token)
                await asyncio.sleep(self.policy.delay(attempt, retry_after_seconds(response)))
            attempt += 1

    async def close(self) -> None:
        await self.http.aclose()
