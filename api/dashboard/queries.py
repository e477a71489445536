"""The dashboard's reads: a filtered, paginated job list, the overview's numbers, one job in full.

Every query is scoped by `owner`: None for an administrator (every job), else that user's id. Lists
select only the columns they show (never the uploaded CSV's bytes) and page in the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVarTuple

import numpy as np
import orjson
from isal import igzip
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from shared.ml.ingest.dataset import with_test_features
from shared.ml.model.predict.spec import is_predict
from shared.ml.spec import JobSpec
from shared.results import predict_table
from shared.store.jobstore import json_stored, open_result_parquet, result_body
from shared.store.uploads import upload_path
from shared.tables import FINISHED, Job, JobEvent, JobResult, JobStatus, Upload, User, utcnow

WINDOW = timedelta(hours=1)
BIN = timedelta(minutes=5)
MAX_CHART_RESULT_BYTES = 50_000_000  # larger results are not parsed for charts (download them instead)


@dataclass(frozen=True)
class JobFilters:
    status: JobStatus | None = None
    endpoint: str | None = None
    user: str | None = None
    error_code: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    id_prefix: str | None = None


@dataclass(frozen=True)
class JobListRow:
    id: str
    created_at: datetime
    user: str
    endpoint: str
    model: str
    n_rows: int | None  # None once the job let go of its upload (cancelled)
    n_columns: int | None
    status: str
    progress: float
    progress_message: str
    queue_wait: float | None
    run_time: float | None
    attempts: int
    error_code: str | None


def model_name(params: dict[str, Any]) -> str:
    return str(params.get("base_model") or params.get("model_type") or "")


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else max((end - start).total_seconds(), 0.0)


Columns = TypeVarTuple("Columns")


def _filtered(query: Select[*Columns], owner: int | None, filters: JobFilters) -> Select[*Columns]:
    if owner is not None:
        query = query.where(Job.user_id == owner)
    if filters.status is not None:
        query = query.where(Job.status == filters.status)
    if filters.endpoint:
        query = query.where(Job.endpoint == filters.endpoint)
    if filters.user:
        query = query.where(Job.user_id == select(User.id).where(User.name == filters.user).scalar_subquery())
    if filters.error_code:
        query = query.where(Job.error_code == filters.error_code)
    if filters.since is not None:
        query = query.where(Job.created_at >= filters.since)
    if filters.until is not None:
        query = query.where(Job.created_at < filters.until)
    if filters.id_prefix:
        query = query.where(Job.id.startswith(filters.id_prefix, autoescape=True))
    return query


def queue_position(session: Session, user_id: int) -> int | None:
    """The place of the user's oldest queued job in its queue, counting the queued jobs that arrived
    before it (fair share may start it sooner); None when none of theirs is queued. What a user sees
    instead of the whole queue's depth."""
    oldest = session.execute(
        select(Job.queue, Job.created_at)
        .where(Job.user_id == user_id, Job.status == JobStatus.queued)
        .order_by(Job.created_at)
        .limit(1)
    ).first()
    if oldest is None:
        return None
    queue, created_at = oldest
    ahead = session.scalar(
        select(func.count())
        .select_from(Job)
        .where(Job.queue == queue, Job.status == JobStatus.queued, Job.created_at < created_at)
    )
    return int(ahead or 0) + 1


def list_jobs(
    session: Session, owner: int | None, filters: JobFilters, limit: int, offset: int
) -> tuple[list[JobListRow], int]:
    """One page of jobs, newest first, and how many match in all."""
    total = session.scalar(_filtered(select(func.count()).select_from(Job), owner, filters)) or 0
    columns = select(
        Job.id,
        Job.created_at,
        User.name,
        Job.endpoint,
        Job.params,
        Upload.n_rows,
        Upload.n_columns,
        Job.status,
        Job.progress,
        Job.progress_message,
        Job.started_at,
        Job.finished_at,
        Job.attempts,
        Job.error_code,
    )
    query = (
        _filtered(columns.select_from(Job), owner, filters)
        .join(User, User.id == Job.user_id)
        .outerjoin(Upload, Upload.sha256 == Job.dataset_sha256)  # a cancelled job has none
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(limit)
        .offset(offset)
    )
    now = utcnow()
    rows = [
        JobListRow(
            id=r.id,
            created_at=r.created_at,
            user=r.name,
            endpoint=r.endpoint,
            model=model_name(r.params),
            n_rows=r.n_rows,
            n_columns=r.n_columns,
            status=r.status,
            progress=r.progress,
            progress_message=r.progress_message,
            queue_wait=seconds_between(r.created_at, r.started_at or (now if r.status == "queued" else None)),
            run_time=seconds_between(r.started_at, r.finished_at or (now if r.status == "running" else None)),
            attempts=r.attempts,
            error_code=r.error_code,
        )
        for r in session.execute(query)
    ]
    return rows, total


def filter_choices(session: Session, owner: int | None) -> dict[str, list[str]]:
    """The endpoints, error codes and (for admins) users that the filters offer."""
    scope = _filtered(select(Job.error_code).distinct(), owner, JobFilters()).where(
        Job.error_code.is_not(None)
    )
    choices = {
        "endpoints": ["mlclassification", "mlregression", "gbdtclassification", "gbdtregression"],
        "error_codes": sorted(code for code in session.scalars(scope) if code),
        "users": [],
    }
    if owner is None:
        choices["users"] = list(session.scalars(select(User.name).order_by(User.name)))
    return choices


@dataclass(frozen=True)
class EndpointTimes:
    endpoint: str
    finished: int
    wait_p50: float | None
    wait_p95: float | None
    run_p50: float | None
    run_p95: float | None


@dataclass(frozen=True)
class Overview:
    by_status: dict[str, int]
    total: int
    bin_labels: list[str]
    succeeded_per_bin: list[int]
    failed_per_bin: list[int]
    cancelled_per_bin: list[int]
    finished_last_hour: int
    failure_rate: float | None
    per_endpoint: list[EndpointTimes]


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def overview(session: Session, owner: int | None) -> Overview:
    counts = dict(
        session.execute(_filtered(select(Job.status, func.count()), owner, JobFilters()).group_by(Job.status))
        .tuples()
        .all()
    )
    by_status = {s.value: int(counts.get(s.value, 0)) for s in JobStatus}
    now = utcnow()
    start = now - WINDOW
    recent = session.execute(
        _filtered(
            select(Job.endpoint, Job.status, Job.created_at, Job.started_at, Job.finished_at),
            owner,
            JobFilters(),
        ).where(Job.status.in_(FINISHED), Job.finished_at >= start)
    ).all()
    n_bins = int(WINDOW / BIN)
    per_bin = {status: [0] * n_bins for status in FINISHED}
    waits: dict[str, list[float]] = {}
    runs: dict[str, list[float]] = {}
    for endpoint, job_status, created, started, finished in recent:
        assert finished is not None  # selected finished in the window
        index = min(int((finished - start) / BIN), n_bins - 1)
        per_bin[JobStatus(job_status)][index] += 1
        if started is not None:
            waits.setdefault(endpoint, []).append(max((started - created).total_seconds(), 0.0))
            runs.setdefault(endpoint, []).append(max((finished - started).total_seconds(), 0.0))
    failed = sum(per_bin[JobStatus.failed])
    finished_count = len(recent)
    labels = [f"-{int((WINDOW - k * BIN) / timedelta(minutes=1))}m" for k in range(n_bins)]
    per_endpoint = [
        EndpointTimes(
            endpoint,
            len(runs[endpoint]),
            _percentile(waits[endpoint], 50),
            _percentile(waits[endpoint], 95),
            _percentile(runs[endpoint], 50),
            _percentile(runs[endpoint], 95),
        )
        for endpoint in sorted(runs)
    ]
    return Overview(
        by_status=by_status,
        total=sum(by_status.values()),
        bin_labels=labels,
        succeeded_per_bin=per_bin[JobStatus.succeeded],
        failed_per_bin=per_bin[JobStatus.failed],
        cancelled_per_bin=per_bin[JobStatus.cancelled],
        finished_last_hour=finished_count,
        failure_rate=failed / finished_count if finished_count else None,
        per_endpoint=per_endpoint,
    )


@dataclass(frozen=True)
class DatasetInfo:
    sha256: str
    n_rows: int
    n_columns: int
    size_bytes: int


@dataclass(frozen=True)
class TimelineEvent:
    event: str
    detail: str | None
    at: datetime
    since_previous: float | None


@dataclass(frozen=True)
class JobDetail:
    job: Job
    user: str
    dataset: DatasetInfo | None
    timeline: list[TimelineEvent]
    reruns: list[str]
    result_size: int | None


def visible_job(session: Session, job_id: str, owner: int | None) -> Job | None:
    """The job if this viewer may see it (an admin: any; a user: their own), else None."""
    if "\x00" in job_id or len(job_id) > 32:
        return None
    job = session.get(Job, job_id)
    if job is None or (owner is not None and job.user_id != owner):
        return None
    return job


def job_detail(session: Session, job: Job) -> JobDetail:
    user = session.scalar(select(User.name).where(User.id == job.user_id)) or "?"
    row = session.execute(
        select(Upload.sha256, Upload.n_rows, Upload.n_columns, Upload.size_bytes).where(
            Upload.sha256 == job.dataset_sha256
        )
    ).first()
    events = session.execute(
        select(JobEvent.event, JobEvent.detail, JobEvent.at)
        .where(JobEvent.job_id == job.id)
        .order_by(JobEvent.at, JobEvent.id)
    ).all()
    timeline, previous = [], None
    for event, detail, at in events:
        timeline.append(TimelineEvent(event, detail, at, seconds_between(previous, at)))
        previous = at
    reruns = list(session.scalars(select(Job.id).where(Job.rerun_of == job.id).order_by(Job.created_at)))
    result_size = session.scalar(select(JobResult.size_bytes).where(JobResult.job_id == job.id))
    return JobDetail(
        job=job,
        user=user,
        dataset=DatasetInfo(*row) if row is not None else None,
        timeline=timeline,
        reruns=reruns,
        result_size=result_size,
    )


def load_result(session: Session, job: Job) -> dict[str, Any] | None:
    """The stored result, parsed, with its test rows' feature values (`X_test`, which colour the SHAP
    beeswarm), unless it is too large to chart in a page; of a predict result kept only as Parquet, its
    first rows (`predict_table.head`), whose reasons the page lists."""
    size = session.scalar(select(JobResult.size_bytes).where(JobResult.job_id == job.id))
    if is_predict(job.spec) and json_stored(session, job.id) is False:  # kept only as Parquet: its head
        table = open_result_parquet(session, job.id)
        return predict_table.head(table) if table is not None else None
    if size is None or size > MAX_CHART_RESULT_BYTES:
        return None
    body = result_body(session, job.id)
    if body is None:
        return None
    result: dict[str, Any] = orjson.loads(igzip.decompress(body))
    if is_predict(job.spec):  # its rows are new rows, not a fit's test rows
        return result
    source = upload_path(session, job.dataset_sha256)
    return with_test_features(result, source, JobSpec.from_json(job.spec))
