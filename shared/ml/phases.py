"""Wall-clock seconds per phase of a job (load, fit, explain, ...), for the worker's log and benchmarks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class Phases:
    """Named durations, summed when a phase runs more than once; in the order first seen."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

    def __str__(self) -> str:
        return " ".join(f"{name}={seconds:.3f}s" for name, seconds in self.seconds.items())
