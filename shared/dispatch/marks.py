"""The dispatch marks of submitted jobs, written a moment after their messages were published.

A submit publishes its job's message as soon as the job is committed. Marking the job dispatched at once
(an UPDATE of its row, and its event) raced the worker that took the message: the mark held the row
while the worker's claim wanted it, and a trivial job waited for the API's bookkeeping. The mark only
matters to the sweep, which publishes again a queued job left unmarked for a second
(`dispatch.sweep`), so it is written here `MARK_DELAY_SECONDS` later, in one transaction for every job
published meanwhile: by then a quick job is claimed or done. A mark lost with the process (or a database
error) only makes the sweep publish the job once more, which is harmless: the claim is conditional.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from shared.dispatch.publish import mark_published

log = logging.getLogger("fitexplain.api")

MARK_DELAY_SECONDS = 0.25  # well within the sweep's second before it publishes an unmarked job again


class DispatchMarks:
    """The marks one API process still owes, written in batches from its event loop."""

    def __init__(self, delay: float = MARK_DELAY_SECONDS) -> None:
        self.delay = delay
        self._pending: list[tuple[str, datetime]] = []
        self._writer: asyncio.Task[None] | None = None

    def add(self, job_id: str, published: datetime) -> None:
        """Owe the mark of `job_id`, whose message was published at `published` (in the event loop)."""
        self._pending.append((job_id, published))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_later(), name="dispatch-marks")

    async def flush(self) -> None:
        """Write what is owed now (at shutdown)."""
        if self._writer is not None:
            self._writer.cancel()
            self._writer = None
        await self._write()

    async def _write_later(self) -> None:
        await asyncio.sleep(self.delay)
        self._writer = None
        await self._write()

    async def _write(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            await run_in_threadpool(mark_published, batch)
        except Exception as exc:  # the sweep publishes these jobs again
            log.warning("could not mark %d published jobs: %s", len(batch), exc)


def dispatch_marks(app: FastAPI) -> DispatchMarks:
    """The app's marks (made by its lifespan, which flushes them at shutdown; or here when none ran)."""
    marks: DispatchMarks | None = getattr(app.state, "dispatch_marks", None)
    if marks is None:
        marks = app.state.dispatch_marks = DispatchMarks()
    return marks
