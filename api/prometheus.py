"""Prometheus metrics computed from the job table at scrape time, so every API process reports the same
numbers and nothing is lost when a process restarts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.tables import FINISHED, DeliveryStatus, Job, JobStatus, WebhookDelivery, utcnow
from shared.webhooks.outbox import oldest_undelivered_age

DURATION_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
DURATION_WINDOW = timedelta(hours=1)


def jobs_by_status(session: Session) -> dict[str, int]:
    counts = dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).tuples().all())
    return {status.value: int(counts.get(status.value, 0)) for status in JobStatus}


def failures_by_code(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(Job.error_code, func.count()).where(Job.status == JobStatus.failed).group_by(Job.error_code)
    ).tuples()
    return {code or "unknown": int(count) for code, count in rows}


def deliveries_by_outcome(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)
    ).tuples()
    counts = dict(rows.all())
    return {status.value: int(counts.get(status.value, 0)) for status in DeliveryStatus}


def recent_durations(session: Session) -> list[float]:
    """Seconds from start to finish of the jobs that finished within the last hour."""
    rows = session.execute(
        select(Job.started_at, Job.finished_at).where(
            Job.status.in_(FINISHED),
            Job.started_at.is_not(None),
            Job.finished_at >= utcnow() - DURATION_WINDOW,
        )
    ).tuples()
    return [
        max((finished - started).total_seconds(), 0.0)
        for started, finished in rows
        if started is not None and finished is not None  # as selected: the types cannot say so
    ]


def histogram_buckets(values: list[float]) -> list[tuple[str, float]]:
    """Cumulative bucket counts in Prometheus' shape, +Inf last."""
    buckets = [(str(float(bound)), float(sum(v <= bound for v in values))) for bound in DURATION_BUCKETS]
    return [*buckets, ("+Inf", float(len(values)))]


class JobCollector(Collector):
    """Reads the job table (and the broker's queue length) on each scrape."""

    def __init__(
        self,
        open_session: Callable[[], Session],
        queue_depth: Callable[[Session], int],
        workers_alive: Callable[[Session], int],
    ) -> None:
        self.open_session = open_session
        self.queue_depth = queue_depth
        self.workers_alive = workers_alive

    def collect(self) -> Iterator[Metric]:
        with self.open_session() as session:
            statuses = jobs_by_status(session)
            failures = failures_by_code(session)
            durations = recent_durations(session)
            depth = self.queue_depth(session)
            alive = self.workers_alive(session)
            deliveries = deliveries_by_outcome(session)
            undelivered_age = oldest_undelivered_age(session)
        jobs = GaugeMetricFamily("fitexplain_jobs", "Stored jobs by status.", labels=["status"])
        for status, count in statuses.items():
            jobs.add_metric([status], count)
        yield jobs
        failed = GaugeMetricFamily(
            "fitexplain_job_failures", "Stored failed jobs by error code.", labels=["code"]
        )
        for code, count in sorted(failures.items()):
            failed.add_metric([code], count)
        yield failed
        yield GaugeMetricFamily(
            "fitexplain_queue_depth", "Job messages waiting in the broker's queue.", value=depth
        )
        yield GaugeMetricFamily(
            "fitexplain_workers_alive", "Worker processes whose heartbeat is fresh.", value=alive
        )
        histogram = HistogramMetricFamily(
            "fitexplain_job_duration_seconds", "Run time of the jobs that finished in the last hour."
        )
        histogram.add_metric([], histogram_buckets(durations), sum_value=sum(durations))
        yield histogram
        webhooks = GaugeMetricFamily(
            "fitexplain_webhook_deliveries",
            "Stored webhook deliveries by outcome (pending, delivered, failed for good).",
            labels=["outcome"],
        )
        for outcome, count in deliveries.items():
            webhooks.add_metric([outcome], count)
        yield webhooks
        yield GaugeMetricFamily(
            "fitexplain_webhook_oldest_undelivered_seconds",
            "Age of the oldest webhook delivery still pending (0 when none is).",
            value=undelivered_age,
        )


def queued_jobs(session: Session) -> int:
    """The queue depth when the broker cannot be asked: jobs waiting for a worker."""
    return int(
        session.scalar(select(func.count()).select_from(Job).where(Job.status == JobStatus.queued)) or 0
    )


def job_registry(
    open_session: Callable[[], Session],
    queue_depth: Callable[[Session], int],
    workers_alive: Callable[[Session], int],
) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobCollector(open_session, queue_depth, workers_alive))
    return registry
