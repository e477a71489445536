"""Upload conversions at once: one per core, whether the upload is received or still streaming in.

More only share the cores: each answer comes later, and all of them are in memory at once (with six
uploads at once, four conversions sharing two cores finished together, after the two at a time that
a slot each gives finish one pair after the other). Uploads waiting for a slot keep streaming to disk.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa

CONVERSIONS = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))


def take_spare() -> bool:
    """Take a slot if another one stays free, without waiting (for a conversion that waits on its
    client: however slow its clients, uploads already received always find a slot)."""
    if not CONVERSIONS.acquire(blocking=False):
        return False
    spare = CONVERSIONS.acquire(blocking=False)
    CONVERSIONS.release()  # the spare one (keeping the first), or the only one
    return spare


def give_back() -> None:
    """Release a slot, and the memory pyarrow's pool keeps (the API's RSS must not ratchet up)."""
    CONVERSIONS.release()
    pa.default_memory_pool().release_unused()


@contextmanager
def conversion_slot() -> Iterator[None]:
    """Wait for a free conversion slot (blocking: call in a thread); released on leaving."""
    CONVERSIONS.acquire()
    try:
        yield
    finally:
        give_back()
