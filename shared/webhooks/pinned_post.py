"""One webhook POST, made safely: resolved and checked once, connected to that address, bounded.

The connection goes to the address that was checked (the URL's host is swapped for it) while the `Host`
header and, for https, the TLS server name (httpcore's `sni_hostname` extension) keep the original host,
so the certificate is still verified against it. No redirects, no proxies from the environment, one total
timeout for the whole attempt, and at most 64 KB of the answer read.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time

import httpx

from shared.ml.errors import ParameterError
from shared.webhooks.address import parse_url, resolve_checked
from shared.webhooks.outbox import EXCERPT_CHARS, AttemptOutcome

MAX_RESPONSE_BYTES = 64 * 1024

log = logging.getLogger("fitexplain.webhooks")


def _host_header(url: httpx.URL, host: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    default_port = {"http": 80, "https": 443}[url.scheme]
    return shown if url.port in (None, default_port) else f"{shown}:{url.port}"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def post_pinned(
    url: str, content: bytes, headers: dict[str, str], *, allow_private: bool, timeout: float
) -> AttemptOutcome:
    """POST `content` to `url` once, as described above; never raises for the receiver's faults."""
    started = time.monotonic()
    address: str | None = None
    status_code: int | None = None
    excerpt: str | None = None
    error: str | None = None
    try:
        async with asyncio.timeout(timeout):
            target = parse_url(url)
            address = await asyncio.to_thread(resolve_checked, target, allow_private=allow_private)
            original = httpx.URL(url)
            pinned = original.copy_with(host=address)
            host = original.raw_host.decode("ascii")  # IDNA-encoded, as it goes on the wire
            extensions = {}
            if target.scheme == "https" and not _is_ip(host):
                extensions["sni_hostname"] = host
            request_headers = {**headers, "host": _host_header(original, host)}
            async with (
                httpx.AsyncClient(trust_env=False, follow_redirects=False, timeout=timeout) as client,
                client.stream(
                    "POST", pinned, content=content, headers=request_headers, extensions=extensions
                ) as response,
            ):
                status_code = response.status_code
                body = bytearray()
                async for chunk in response.aiter_raw():
                    body += chunk
                    if len(body) >= MAX_RESPONSE_BYTES:
                        break
                excerpt = bytes(body[:EXCERPT_CHARS]).decode("utf-8", "replace")
    except ParameterError as exc:
        error = f"refused: {exc.message}"
    except TimeoutError:
        error = f"timed out after {timeout} s"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
    except (OSError, httpx.InvalidURL, UnicodeError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # anything else is still an attempt that failed, never a stuck delivery
        log.exception("webhook attempt to %s failed unexpectedly", url)
        error = f"{type(exc).__name__}: {exc}"
    latency_ms = round((time.monotonic() - started) * 1000, 1)
    return AttemptOutcome(address, status_code, latency_ms, error and error[:500], excerpt)
