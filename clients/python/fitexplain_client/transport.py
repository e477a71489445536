"""The one HTTP core, with two faces that only send (httpx's `BaseClient` / `Client` / `AsyncClient`).

`BaseTransport` builds each request (URL, headers, the upload opened afresh per attempt), decides
retries and reads responses: 429 and 503 are retried with backoff honouring Retry-After; a failure to
connect or a broken connection is retried for idempotent requests (GET, DELETE) only, as a POST may have
created a job already. An error status becomes the typed `APIStatusError` of its status, and every
failure of the HTTP library an `APIConnectionError` (or `APITimeoutError`) naming the URL.
`SyncTransport` and `AsyncTransport` send, and sleep between attempts.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from fitexplain_client.data import Upload
from fitexplain_client.errors import (
    APIConnectionError,
    AuthenticationError,
    connection_error,
    error_from_response,
    retry_after_seconds,
)
from fitexplain_client.version import __version__

RETRY_STATUSES = frozenset({429, 503})
# Drop idle connections well before uvicorn closes them (5 s): a pooled connection reused just as the
# server closes it fails with a ReadError, which a POST may not retry (e.g. after a 5 s Retry-After).
POOL_LIMITS = httpx.Limits(keepalive_expiry=2.0)
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})
HTTP_FAILURES = (httpx.HTTPError, httpx.InvalidURL)
Files = dict[str, tuple[str, Any, str]]


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


@dataclass(frozen=True)
class Request:
    """One call of the service, before it is sent (and sent again on a retry)."""

    method: str
    path: str
    params: Mapping[str, str | int | float] | None = None
    upload: Upload | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # more httpx.request arguments (content, headers)
    background: Upload | None = None  # a second file part: SHAP's background rows

    @property
    def idempotent(self) -> bool:
        return self.method.upper() in IDEMPOTENT_METHODS


def headers(token: str | None) -> dict[str, str]:
    found = {"User-Agent": f"fitexplain-client/{__version__}", "Accept-Encoding": "gzip"}
    if token:
        found["Authorization"] = f"Bearer {token}"
    return found


class BaseTransport:
    """What both faces share: the settings, building a request, the retry rules, reading the answer."""

    def __init__(self, base_url: str, token: str | None, timeout: float, policy: RetryPolicy) -> None:
        self.base_url = base_url
        self.token = token
        self.timeout = timeout
        self.policy = policy

    def client_options(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "headers": headers(self.token),
            "timeout": self.timeout,
            "limits": POOL_LIMITS,
        }

    def url(self, request: Request) -> str:
        return f"{self.base_url}{request.path}"

    @contextmanager
    def opened(self, request: Request) -> Iterator[Files | None]:
        """The file parts, opened for one attempt (a file is read as it is sent, never whole)."""
        uploads = [upload for upload in (request.upload, request.background) if upload is not None]
        if not uploads:
            yield None
            return
        with ExitStack() as stack:
            files: Files = {}
            for upload in uploads:
                files.update(stack.enter_context(upload.open()))
            yield files

    def arguments(self, request: Request, files: Files | None) -> dict[str, Any]:
        found: dict[str, Any] = {"params": request.params, **request.extra}
        if files is not None:
            found["files"] = files
        return found

    def status_delay(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before sending again, or None to answer with this response."""
        if response.status_code in RETRY_STATUSES and attempt + 1 < self.policy.attempts:
            return self.policy.delay(attempt, retry_after_seconds(response))
        return None

    def failure_delay(self, request: Request, attempt: int) -> float | None:
        """Seconds to wait before sending again after the connection failed, or None to give up."""
        if request.idempotent and attempt + 1 < self.policy.attempts:
            return self.policy.delay(attempt, None)
        return None

    def failure(self, exc: Exception, request: Request) -> APIConnectionError:
        if isinstance(exc, httpx.TransportError):
            return connection_error(exc, self.url(request))
        return APIConnectionError(
            f"the request failed ({type(exc).__name__}: {exc})",
            url=self.url(request),
            hint="check the service URL",
        )

    def checked(self, response: httpx.Response) -> httpx.Response:
        if response.is_success:
            return response
        error = error_from_response(response)
        if isinstance(error, AuthenticationError) and not self.token:
            error.message += " (no token: pass token=, set FITEXPLAIN_TOKEN or run `fitexplain login`)"
        raise error


class SyncTransport(BaseTransport):
    def __init__(self, base_url: str, token: str | None, timeout: float, policy: RetryPolicy) -> None:
        super().__init__(base_url, token, timeout, policy)
        self.http = httpx.Client(**self.client_options())

    def send(self, request: Request) -> httpx.Response:
        attempt = 0
        while True:
            try:
                with self.opened(request) as files:
                    response = self.http.request(
                        request.method, request.path, **self.arguments(request, files)
                    )
            except HTTP_FAILURES as exc:
                delay = self.failure_delay(request, attempt)
                if delay is None:
                    raise self.failure(exc, request) from exc
            else:
                delay = self.status_delay(response, attempt)
                if delay is None:
                    return self.checked(response)
            time.sleep(delay)
            attempt += 1

    def close(self) -> None:
        self.http.close()


class AsyncTransport(BaseTransport):
    def __init__(self, base_url: str, token: str | None, timeout: float, policy: RetryPolicy) -> None:
        super().__init__(base_url, token, timeout, policy)
        self.http = httpx.AsyncClient(**self.client_options())

    async def send(self, request: Request) -> httpx.Response:
        attempt = 0
        while True:
            try:
                with self.opened(request) as files:
                    response = await self.http.request(
                        request.method, request.path, **self.arguments(request, files)
                    )
            except HTTP_FAILURES as exc:
                delay = self.failure_delay(request, attempt)
                if delay is None:
                    raise self.failure(exc, request) from exc
            else:
                delay = self.status_delay(response, attempt)
                if delay is None:
                    return self.checked(response)
            await asyncio.sleep(delay)
            attempt += 1

    async def close(self) -> None:
        await self.http.aclose()
