"""Test resolvers for webhook hosts, loaded by the service through FITEXPLAIN_WEBHOOK_RESOLVER.

`*.rebind.test` answers a public address the first time a process asks and loopback afterwards (DNS
rebinding); `*.loopback.test` always answers 127.0.0.1. Any other host goes to the system resolver.
"""

from __future__ import annotations

from collections import Counter

from shared.webhooks.address import system_resolver

PUBLIC_ADDRESS = "93.184.215.14"  # a public address; nothing in the tests ever connects to it
_asked: Counter[str] = Counter()


def rebinding(host: str, port: int) -> list[str]:
    _asked[host] += 1
    if host.endswith(".rebind.test"):
        return [PUBLIC_ADDRESS] if _asked[host] == 1 else ["127.0.0.1"]
    if host.endswith(".loopback.test"):
        return ["127.0.0.1"]
    return system_resolver(host, port)
