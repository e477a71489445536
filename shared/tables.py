"""Database tables. The job row is the source of truth; the broker only carries job ids."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    TypeDecorator,
    false,
    or_,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement

JsonType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


def heartbeat_stale(heartbeat_at: Any, stale_after: float) -> ColumnElement[bool]:
    """SQL: a heartbeat column that is missing or older than `stale_after` seconds (its owner is gone).

    The one definition of a lost worker, for jobs and fan-out chunks alike.
    """
    return heartbeat_older_than(heartbeat_at, utcnow() - timedelta(seconds=stale_after))


def heartbeat_older_than(heartbeat_at: Any, cutoff: Any) -> ColumnElement[bool]:
    """`heartbeat_stale` with its cutoff given (a datetime, or a bound parameter of a statement built
    once)."""
    return or_(heartbeat_at.is_(None), heartbeat_at < cutoff)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp on every backend: SQLite hands back naive datetimes, read here as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    # Every class here is mapped to a Table (DeclarativeBase types it as any FromClause, which has no
    # `insert` or `update`).
    __table__: ClassVar[Table]


class JobStatus(enum.StrEnum):
    """queued -> running -> succeeded | failed; queued | running -> cancelled; running -> queued (retry)."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


FINISHED = (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)
HOLDING_STATUSES = (JobStatus.queued, JobStatus.running)
HOLDING = f"status IN ({', '.join(repr(status.value) for status in HOLDING_STATUSES)}) OR stopping"
"""The predicate of the partial index of jobs that may hold a worker (`shared.limits.holds_a_worker`
narrows it to beating workers); the initial migration has its own copy, as migrations do."""


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    is_admin: Mapped[bool] = mapped_column(default=False)
    webhook_secret: Mapped[str | None] = mapped_column(String(100))
    # After a rotation the previous secret still signs (beside the new one) until this time.
    webhook_secret_previous: Mapped[str | None] = mapped_column(String(100))
    webhook_secret_previous_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user")


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    user: Mapped[User] = relationship(back_populates="tokens")


class Upload(Base):
    """An upload, stored once per content (sha256) in the blob store (shared/blobs/store.py), where every
    worker can read it, as the canonical Parquet file the submit wrote (shared.ml.ingest.canonical)."""

    __tablename__ = "datasets"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)  # of the bytes as sent
    blob_key: Mapped[str] = mapped_column(String(200))
    size_bytes: Mapped[int] = mapped_column(Integer)  # bytes stored
    n_rows: Mapped[int] = mapped_column(Integer)
    n_columns: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')", name="job_status_valid"
        ),
        CheckConstraint("progress >= 0 AND progress <= 1", name="job_progress_fraction"),
        Index("ix_jobs_user_created", "user_id", "created_at"),
        Index("ix_jobs_status", "status"),
        Index("ix_jobs_created", "created_at", "id"),
        Index("ix_jobs_status_created", "status", "created_at"),
        Index("ix_jobs_endpoint_created", "endpoint", "created_at"),
        Index("ix_jobs_error_code", "error_code"),
        CheckConstraint("queue IN ('small', 'large')", name="job_queue_valid"),
        Index("ix_jobs_queue_status_created", "queue", "status", "created_at"),
        Index("ix_jobs_dataset_user", "dataset_sha256", "user_id"),
        # The recently finished jobs (and their users), summed by the fair-share claim.
        Index("ix_jobs_finished_user", "finished_at", "user_id"),
        # The jobs that hold a worker (shared.limits.holds_a_worker), counted at every submit.
        Index("ix_jobs_user_holding", "user_id", postgresql_where=text(HOLDING), sqlite_where=text(HOLDING)),
        # A user's jobs by a prefix of their id, compared byte by byte (shared.store.job_ids).
        Index("ix_jobs_user_id_prefix", "user_id", "id", postgresql_ops={"id": "varchar_pattern_ops"}),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    endpoint: Mapped[str] = mapped_column(String(40))
    params: Mapped[dict[str, Any]] = mapped_column(JsonType)  # the query parameters, for display
    spec: Mapped[dict[str, Any]] = mapped_column(JsonType)  # JobSpec.to_json(): what the worker runs
    # The upload; None once the job was cancelled (its upload is then released at once).
    dataset_sha256: Mapped[str | None] = mapped_column(ForeignKey("datasets.sha256"))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.queued)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    progress_message: Mapped[str] = mapped_column(String(200), default="queued")
    error_code: Mapped[str | None] = mapped_column(String(60))
    error_message: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(200))
    # Estimated worker-seconds (shared/ml/cost.py) and the queue it routed the job to: small or large.
    estimated_seconds: Mapped[float | None] = mapped_column(Float)
    queue: Mapped[str] = mapped_column(String(16), default="small", server_default="small")
    # Worker-seconds its computations took, added when each one ends: its user's recent use (fair share).
    worker_seconds: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    dispatched_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # Cancelled while running, and its worker has not yet confirmed the computation was killed.
    stopping: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    rerun_of: Mapped[str | None] = mapped_column(String(32))  # the job this one re-runs (dashboard)
    # The uploaded file's name as sent (None when the part had none), for lists of jobs.
    data_filename: Mapped[str | None] = mapped_column(String(255))
    # The headline metric of a succeeded job's result (shared.ml.metrics.headline_score), written with it
    # so that a list of jobs reads no result.
    score_name: Mapped[str | None] = mapped_column(String(40))
    score_value: Mapped[float | None] = mapped_column(Float)


class JobResult(Base):
    """The result in the blob store: its JSON, gzip-compressed (results reach tens of MB for large SHAP
    jobs), and for results of many rows its Parquet form; a predict job's result of many rows is kept only
    as Parquet (`json_stored` false), its JSON written from it on request."""

    __tablename__ = "job_results"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    blob_key: Mapped[str] = mapped_column(String(200))  # the gzip JSON; without it, the Parquet form
    size_bytes: Mapped[int] = mapped_column(Integer)  # the JSON's size, uncompressed (0 when not stored)
    stored_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")  # as stored
    sha256: Mapped[str | None] = mapped_column(String(64))  # of the stored gzip JSON
    # The same result as Parquet (shared.results), written with it for results of many rows (and for every
    # predict job's), so that a Parquet download is a plain stream; NULL for smaller ones (converted from
    # the JSON on request).
    parquet_key: Mapped[str | None] = mapped_column(String(200))
    parquet_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    json_stored: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class StorageCounts(Base):
    """What each user's jobs keep, as `GET /account/usage` and the storage quota count it: the uploads
    their jobs reference (each once) and their results. Kept by triggers on jobs and job_results (the
    initial migration creates them), so that a submit reads one row instead of counting all the user's
    jobs."""

    __tablename__ = "storage_usage"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    uploads_bytes: Mapped[int] = mapped_column(BigInteger, server_default="0")
    uploads: Mapped[int] = mapped_column(Integer, server_default="0")
    results_bytes: Mapped[int] = mapped_column(BigInteger, server_default="0")
    results: Mapped[int] = mapped_column(Integer, server_default="0")
    # The kept models their jobs reference (each once, like uploads), with their download files.
    models_bytes: Mapped[int] = mapped_column(BigInteger, server_default="0")
    models: Mapped[int] = mapped_column(Integer, server_default="0")


class UploadRejections(Base):
    """A user's refused uploads as a leaky bucket (`shared.limits`): `level` units at `at` (seconds since
    the epoch), drained since at the rejected-upload budget's rate."""

    __tablename__ = "upload_rejections"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    level: Mapped[float] = mapped_column(Float)
    at: Mapped[float] = mapped_column(Float)


class JobEvent(Base):
    """Each job's history: submitted, dispatched, started, retried, finished."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class JobChunk(Base):
    """One piece of a fanned-out explanation; completion is counted here, not in Celery chords."""

    __tablename__ = "job_chunks"
    __table_args__ = (CheckConstraint("status IN ('pending', 'running', 'done')", name="chunk_status_valid"),)

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    method: Mapped[str] = mapped_column(String(20), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    start: Mapped[int] = mapped_column(Integer)
    stop: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    blob_key: Mapped[str | None] = mapped_column(String(200))  # the done part, until the job finishes
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    worker: Mapped[str | None] = mapped_column(String(200))  # who claimed it last (host:pid)


class JobPrepared(Base):
    """A fanned-out job's fitted model and arrays, so helping workers skip parsing and refitting.

    A pickle written by our own worker from a model it fitted; never anything a user sent.
    """

    __tablename__ = "job_prepared"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    blob_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class JobBackground(Base):
    """The SHAP background file sent with a job: its feature columns as Parquet
    (shared.ml.model.background_file), at most FITEXPLAIN_MAX_BACKGROUND_ROWS rows, and the sha256 of the
    file as sent. Small and bounded, it lives on this row rather than in the blob store, and goes with its
    job (a re-run gets a copy)."""

    __tablename__ = "job_backgrounds"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))  # of the file as sent
    n_rows: Mapped[int] = mapped_column(Integer)
    parquet: Mapped[bytes] = mapped_column(LargeBinary)


class StoredModel(Base):
    """A kept model (shared.ml.model.kept), stored once per content: its pickle under its sha256
    (shared.ml.model.codec verifies it before any load), with its download files (`ModelFile`)."""

    __tablename__ = "models"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)  # of the pickle's bytes
    blob_key: Mapped[str] = mapped_column(String(200))
    size_bytes: Mapped[int] = mapped_column(BigInteger)  # the pickle's
    stored_bytes: Mapped[int] = mapped_column(BigInteger)  # the pickle's and its download files'
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class ModelFile(Base):
    """A kept model in one download format (shared.ml.model.export), written by the worker that fitted
    it; served only when its bytes still have their sha256."""

    __tablename__ = "model_files"

    model_sha256: Mapped[str] = mapped_column(
        ForeignKey("models.sha256", ondelete="CASCADE"), primary_key=True
    )
    format: Mapped[str] = mapped_column(String(20), primary_key=True)
    blob_key: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    filename: Mapped[str] = mapped_column(String(100))
    media_type: Mapped[str] = mapped_column(String(100))
    headers: Mapped[dict[str, Any]] = mapped_column(JsonType)  # e.g. a skops file's untrusted types


class ModelConversion(Base):
    """A download format of a kept model that is made on first download, by a small worker task: when it
    was last asked for (a download that finds neither its file nor a recent request publishes the task
    again), and why it failed, if it did (the download then answers 409). Goes with its model."""

    __tablename__ = "model_conversions"

    model_sha256: Mapped[str] = mapped_column(
        ForeignKey("models.sha256", ondelete="CASCADE"), primary_key=True
    )
    format: Mapped[str] = mapped_column(String(20), primary_key=True)
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    failure: Mapped[str | None] = mapped_column(Text, nullable=True)


class JobModel(Base):
    """A succeeded job's model card (`GET /jobs/{id}/model`) and the stored model it keeps (None when the
    model was larger than FITEXPLAIN_MAX_MODEL_BYTES and not kept). Goes only with its job."""

    __tablename__ = "job_models"
    __table_args__ = (Index("ix_job_models_model_user", "model_sha256", "user_id"),)

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    model_sha256: Mapped[str | None] = mapped_column(ForeignKey("models.sha256"))
    card: Mapped[dict[str, Any]] = mapped_column(JsonType)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class DeliveryStatus(enum.StrEnum):
    """pending -> delivered | failed (the retry schedule is used up); a redelivery is a new row."""

    pending = "pending"
    delivered = "delivered"
    failed = "failed"


class WebhookDelivery(Base):
    """The webhook outbox: one event to send to one URL, written in the transaction that finished the job.

    `next_attempt_at` is also the lease of a dispatcher sending it (pushed ahead when claimed), so a
    dispatcher killed mid-attempt delays the delivery by one lease, never loses it.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="delivery_status_valid"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    event_type: Mapped[str] = mapped_column(String(40))
    message_id: Mapped[str] = mapped_column(String(100))
    url: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.pending)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    claim_token: Mapped[str | None] = mapped_column(String(32))
    requested_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class WebhookAttempt(Base):
    """One POST of a delivery: when, to which checked address, the answer's status and first 1 KB."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    address: Mapped[str | None] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    response_excerpt: Mapped[str | None] = mapped_column(Text)


class WorkerRow(Base):
    """One worker process, heartbeated by itself; rows whose heartbeat is old enough are deleted."""

    __tablename__ = "workers"
    __table_args__ = (Index("ix_workers_heartbeat", "heartbeat_at"),)

    name: Mapped[str] = mapped_column(String(200), primary_key=True)  # host:pid, as in Job.worker
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    queue: Mapped[str] = mapped_column(String(400))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    current_job: Mapped[str | None] = mapped_column(String(32))
    jobs_done: Mapped[int] = mapped_column(Integer, default=0)
    jobs_failed: Mapped[int] = mapped_column(Integer, default=0)
