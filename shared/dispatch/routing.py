"""Which queue a job goes to: by its estimated cost, so small jobs never wait behind large ones.

A job estimated above `large_job_seconds` is "large" and published to `Settings.large_queue`; the
others are "small" and go to `Settings.queue`. The job row keeps the choice (`jobs.queue`), so every
later publication of the job (the sweep's republish, a requeue after a lost worker, fan-out chunks)
goes to the same queue, and a worker only claims jobs of the queue its message came from.
"""

from __future__ import annotations

from typing import Literal

from shared.settings import Settings

JobQueue = Literal["small", "large"]


def queue_for_cost(estimated_seconds: float, settings: Settings) -> JobQueue:
    return "large" if estimated_seconds > settings.large_job_seconds else "small"


def broker_queue(queue: str, settings: Settings) -> str:
    """The Celery queue name of a job queue ("small" or "large")."""
    return settings.large_queue if queue == "large" else settings.queue
