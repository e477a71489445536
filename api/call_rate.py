"""A per-user limit on calls of one route within a sliding minute, counted in this API process (for a
route that keeps nothing in the database to count, such as `POST /webhooks/test`)."""

from __future__ import annotations

import math
import threading
import time
from collections import deque

from shared.limits import RateLimited

WINDOW_SECONDS = 60.0


class CallRate:
    """At most `limit` calls per user in any `WINDOW_SECONDS`; a call over it raises RateLimited with the
    seconds until the oldest call leaves the window."""

    def __init__(self, what: str, setting: str) -> None:
        self.what = what  # "webhook tests"
        self.setting = setting  # the FITEXPLAIN_* name that sets the limit
        self._calls: dict[int, deque[float]] = {}
        self._lock = threading.Lock()

    def take(self, user_id: int, limit: int) -> None:
        now = time.monotonic()
        with self._lock:
            calls = self._calls.setdefault(user_id, deque())
            while calls and calls[0] <= now - WINDOW_SECONDS:
                calls.popleft()
            if len(calls) >= limit:
                retry_after = max(1, math.ceil(calls[0] + WINDOW_SECONDS - now))
                raise RateLimited(
                    f"Too many {self.what}: at most {limit} a minute ({self.setting}); "
                    f"retry in {retry_after} s.",
                    retry_after=retry_after,
                )
            calls.append(now)
