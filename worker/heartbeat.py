"""A thread that proves a worker is alive by writing a timestamp every few seconds."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("fitexplain.worker")


class JobCancelled(Exception):
    """The job row left `running` under us (cancelled by its user, or reclaimed after a stall)."""


class Heartbeat:
    """Calls `beat(progress)` every `interval` seconds from a thread; `beat` returns False once the work
    is no longer ours, and the next progress report then raises JobCancelled to stop the work."""

    def __init__(self, name: str, beat: Callable[[tuple[float, str] | None], bool], interval: float) -> None:
        self.beat = beat
        self.interval = interval
        self.progress: tuple[float, str] | None = None
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{name}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)

    def record(self, fraction: float, message: str) -> None:
        """Progress to write with the next beat (from a computation that this thread does not run)."""
        self.progress = (fraction, message)

    def report(self, fraction: float, message: str) -> None:
        """A progress callback for the ML core."""
        self.progress = (fraction, message)
        self.check()

    def check(self) -> None:
        if self.lost.is_set():
            raise JobCancelled

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                still_ours = self.beat(self.progress)
            except Exception as exc:  # a database blip: the next beat tries again
                log.warning("heartbeat failed: %s", exc)
                continue
            if not still_ours:
                self.lost.set()
