"""Where a webhook may go: http(s) URLs whose host resolves only to public addresses.

Checked at submit (a clear 422) and again at every delivery attempt, against one resolution that the
connection then uses (pinned), so a host that resolves elsewhere the second time (DNS rebinding) cannot
reach the service's own network. IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64, 6to4,
Teredo) are judged by that IPv4 address. The resolver is a seam (`FITEXPLAIN_WEBHOOK_RESOLVER`) for tests.
"""

from __future__ import annotations

import importlib
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from shared.ml.errors import ParameterError
from shared.settings import get_settings

Resolver = Callable[[str, int], list[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # SIIT: ::ffff:0:a.b.c.d
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # local-use NAT64 (RFC 8215): never public


def _refuse(message: str) -> ParameterError:
    return ParameterError("bad_webhook_url", message)


@dataclass(frozen=True)
class WebhookTarget:
    """A parsed webhook URL: the host to resolve and the port to connect to."""

    url: str
    scheme: str
    host: str
    port: int


def parse_url(url: str) -> WebhookTarget:
    """The URL's scheme, host and port, or a ParameterError naming what is wrong with it."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket: http://[::1/h
        raise _refuse(f"webhook_url {url!r} is not a valid URL ({exc}).") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _refuse(f"webhook_url must be an http(s) URL with a host, got {url!r}.")
    try:
        port = parts.port
    except ValueError as exc:
        raise _refuse(_bad_port(url, parts.netloc)) from exc
    if port == 0:
        raise _refuse(_bad_port(url, parts.netloc))
    return WebhookTarget(url, parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80))


def _bad_port(url: str, netloc: str) -> str:
    given = netloc.rpartition(":")[2]
    return f"webhook_url port {given!r} is not a number from 1 to 65535 (in {url!r})."


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address stands for (mapped, translated, compatible, NAT64, 6to4,
    Teredo server and client)."""
    found = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address in _IPV4_TRANSLATED or address in _NAT64 or address in _IPV4_COMPATIBLE:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    return found


def non_public_reason(address: IPAddress) -> str | None:
    """Why a webhook must not go to this address (None when it may)."""
    if not address.is_global or address.is_multicast:
        return f"a non-public address ({address})"
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64_LOCAL:
            return f"a non-public address ({address}, local-use NAT64)"
        for inner in embedded_ipv4(address):
            if not inner.is_global or inner.is_multicast:
                return f"a non-public address ({address}, which carries {inner})"
    return None


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@lru_cache
def get_resolver() -> Resolver:
    """The resolver: the system's, or `module:function` from FITEXPLAIN_WEBHOOK_RESOLVER (tests)."""
    path = get_settings().webhook_resolver
    if not path:
        return system_resolver
    module, _, name = path.partition(":")
    resolver: Resolver = getattr(importlib.import_module(module), name)
    return resolver


def resolve_checked(target: WebhookTarget, *, allow_private: bool) -> str:
    """Resolve the host once and return the address to connect to; refuse the URL when any address
    it resolves to is not public (unless `allow_private`)."""
    try:
        addresses = [ipaddress.ip_address(target.host)]
    except ValueError:
        try:
            resolved = get_resolver()(target.host, target.port)
            addresses = [ipaddress.ip_address(a.split("%")[0]) for a in resolved]
        except (OSError, UnicodeError) as exc:
            raise _refuse(f"webhook_url host {target.host!r} does not resolve.") from exc
    if not addresses:
        raise _refuse(f"webhook_url host {target.host!r} does not resolve.")
    if not allow_private:
        for address in addresses:
            reason = non_public_reason(address)
            if reason:
                raise _refuse(f"webhook_url host {target.host!r} resolves to {reason}.")
    return str(addresses[0])


def check_url(url: str, *, allow_private: bool) -> None:
    """The submit-time check: a well-formed http(s) URL whose host resolves to public addresses only."""
    target = parse_url(url)
    if not allow_private:
        resolve_checked(target, allow_private=False)
