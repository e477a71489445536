"""The schema: users and tokens, uploads, jobs with their results, events, fan-out chunks and prepared
models, the webhook outbox, workers, and each user's storage counts with the triggers that keep them

Bytes live in the blob store (shared/blobs/store.py): rows keep their blob key, size and checksum.

`storage_usage` holds each user's counts (`GET /account/usage`'s numbers: the uploads their jobs
reference, counted once each, and their results), kept by triggers on `jobs` and `job_results`, so that
every way a row changes (a submit, a cancel that releases the upload, DELETE, retention, a cascade) is
counted, by whichever process does it, and a submit's quota check reads one row. `ix_jobs_user_holding`
is a partial index of the jobs that hold a worker (`shared.limits.holds_a_worker`), counted at every
submit; `ix_jobs_dataset_user` answers the triggers' question whether another job of the same user
keeps an upload, and `release_upload`'s whether any job does.

The jobs trigger runs BEFORE each row changes: it then sees the rows that the same statement changed
before it (a retention DELETE of two jobs of one user on one upload counts the upload off once), and the
job's result row, which a cascade deletes next. On Postgres it first locks the user's counts, so two
transactions releasing the same upload cannot both see the other's job still there.

A later migration that rebuilds `jobs`, `job_results` or `users` on SQLite (`batch_alter_table` copies
the table) drops these triggers with it and must create them again.

Revision ID: 0001_initial
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

JSON_TYPE = sa.JSON().with_variant(JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)
HOLDING = "status IN ('queued', 'running') OR stopping"

# The statements that keep the counts, the same on both databases (Postgres runs them in a plpgsql
# function, SQLite in its triggers' bodies). An upload counts for a user while at least one of the
# user's jobs references it; a job row's upload always exists (foreign key) when these run.
UPLOAD_GONE = """
    UPDATE storage_usage SET
        uploads_bytes = uploads_bytes - (SELECT size_bytes FROM datasets WHERE sha256 = OLD.dataset_sha256),
        uploads = uploads - 1
    WHERE user_id = OLD.user_id AND OLD.dataset_sha256 IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM jobs WHERE dataset_sha256 = OLD.dataset_sha256 AND user_id = OLD.user_id
        AND id <> OLD.id);"""
UPLOAD_KEPT = """
    UPDATE storage_usage SET
        uploads_bytes = uploads_bytes + (SELECT size_bytes FROM datasets WHERE sha256 = NEW.dataset_sha256),
        uploads = uploads + 1
    WHERE user_id = NEW.user_id AND NEW.dataset_sha256 IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM jobs WHERE dataset_sha256 = NEW.dataset_sha256 AND user_id = NEW.user_id
        AND id <> NEW.id);"""
# A deleted job's result, counted off while it is still there: the cascade deletes it next, and the
# result's own trigger then finds no job to charge.
RESULT_OF_DELETED_JOB = """
    UPDATE storage_usage SET
        results_bytes = results_bytes - (SELECT stored_bytes FROM job_results WHERE job_id = OLD.id),
        results = results - 1
    WHERE user_id = OLD.user_id AND EXISTS (SELECT 1 FROM job_results WHERE job_id = OLD.id);"""
RESULT_ROW = """
    UPDATE storage_usage
    SET results_bytes = results_bytes {sign} {row}.stored_bytes, results = results {sign} 1
    WHERE user_id = (SELECT user_id FROM jobs WHERE id = {row}.job_id);"""
RESULT_ADDED = RESULT_ROW.format(sign="+", row="NEW")
RESULT_REMOVED = RESULT_ROW.format(sign="-", row="OLD")
USER_ADDED = "INSERT INTO storage_usage (user_id) VALUES (NEW.id);"

POSTGRES_FUNCTIONS = {
    "storage_usage_of_jobs": f"""
DECLARE
    owner integer := CASE WHEN TG_OP = 'DELETE' THEN OLD.user_id ELSE NEW.user_id END;
BEGIN
    PERFORM 1 FROM storage_usage WHERE user_id = owner FOR UPDATE;
    IF TG_OP = 'DELETE' THEN
        {UPLOAD_GONE}
        {RESULT_OF_DELETED_JOB}
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF NEW.dataset_sha256 IS NOT DISTINCT FROM OLD.dataset_sha256 THEN
            RETURN NEW;
        END IF;
        {UPLOAD_GONE}
    END IF;
    {UPLOAD_KEPT}
    RETURN NEW;
END""",
    "storage_usage_of_results": f"""
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        {RESULT_REMOVED}
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        {RESULT_ADDED}
    END IF;
    RETURN NULL;
END""",
    "storage_usage_of_users": f"""
BEGIN
    {USER_ADDED}
    RETURN NULL;
END""",
}
POSTGRES_TRIGGERS = {  # name (that of its function too): (when and on what, table)
    "storage_usage_of_jobs": ("BEFORE INSERT OR DELETE OR UPDATE OF dataset_sha256", "jobs"),
    "storage_usage_of_results": ("AFTER INSERT OR DELETE OR UPDATE OF stored_bytes, job_id", "job_results"),
    "storage_usage_of_users": ("AFTER INSERT", "users"),
}
SQLITE_TRIGGERS = {  # name: (when and on what, body)
    "storage_usage_job_inserted": ("BEFORE INSERT ON jobs", UPLOAD_KEPT),
    "storage_usage_job_deleted": ("BEFORE DELETE ON jobs", UPLOAD_GONE + RESULT_OF_DELETED_JOB),
    "storage_usage_job_upload_changed": (
        "BEFORE UPDATE OF dataset_sha256 ON jobs WHEN OLD.dataset_sha256 IS NOT NEW.dataset_sha256",
        UPLOAD_GONE + UPLOAD_KEPT,
    ),
    "storage_usage_result_inserted": ("AFTER INSERT ON job_results", RESULT_ADDED),
    "storage_usage_result_deleted": ("AFTER DELETE ON job_results", RESULT_REMOVED),
    "storage_usage_result_changed": (
        "AFTER UPDATE OF stored_bytes, job_id ON job_results",
        RESULT_REMOVED + RESULT_ADDED,
    ),
    "storage_usage_user_inserted": ("AFTER INSERT ON users", USER_ADDED),
}


def upgrade() -> None:
    create_tables()
    if op.get_bind().dialect.name == "postgresql":
        for name, body in POSTGRES_FUNCTIONS.items():
            op.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ {body} $$")
        for name, (event, table) in POSTGRES_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {event} ON {table} FOR EACH ROW EXECUTE FUNCTION {name}()")
    else:
        for name, (event, body) in SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {event} BEGIN {body} END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, (_, table) in POSTGRES_TRIGGERS.items():
            op.execute(f"DROP TRIGGER {name} ON {table}")
        for name in POSTGRES_FUNCTIONS:
            op.execute(f"DROP FUNCTION {name}()")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
    for table in (
        "workers",
        "webhook_attempts",
        "webhook_deliveries",
        "job_prepared",
        "job_chunks",
        "job_events",
        "storage_usage",
        "job_results",
        "jobs",
        "datasets",
        "api_tokens",
        "users",
    ):
        op.drop_table(table)  # with its indexes


def create_tables() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(length=100), nullable=False, unique=True),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("webhook_secret", sa.String(length=100), nullable=True),
        sa.Column("webhook_secret_previous", sa.String(length=100), nullable=True),
        sa.Column("webhook_secret_previous_until", TIMESTAMP, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False, unique=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=True),
        sa.Column("revoked_at", TIMESTAMP, nullable=True),
    )
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])
    op.create_table(
        "datasets",
        sa.Column("sha256", sa.String(length=64), primary_key=True),
        sa.Column("blob_key", sa.String(length=200), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("n_columns", sa.Integer(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
    )
    create_jobs()
    op.create_table(
        "job_results",
        sa.Column(
            "job_id", sa.String(length=32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("blob_key", sa.String(length=200), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("stored_bytes", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("parquet_key", sa.String(length=200), nullable=True),
        sa.Column("parquet_bytes", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("created_at", TIMESTAMP, nullable=False),
    )
    op.create_table(
        "storage_usage",
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("uploads_bytes", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("uploads", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("results_bytes", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("results", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_table(
        "job_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "job_id", sa.String(length=32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("at", TIMESTAMP, nullable=False),
    )
    op.create_index("ix_job_events_job_id", "job_events", ["job_id"])
    op.create_table(
        "job_chunks",
        sa.Column(
            "job_id", sa.String(length=32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("method", sa.String(length=20), primary_key=True),
        sa.Column("index", sa.Integer(), primary_key=True),
        sa.Column("start", sa.Integer(), nullable=False),
        sa.Column("stop", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("blob_key", sa.String(length=200), nullable=True),
        sa.Column("heartbeat_at", TIMESTAMP, nullable=True),
        sa.CheckConstraint("status IN ('pending', 'running', 'done')", name="chunk_status_valid"),
    )
    op.create_table(
        "job_prepared",
        sa.Column(
            "job_id", sa.String(length=32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("blob_key", sa.String(length=200), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
    )
    create_webhook_outbox()
    op.create_table(
        "workers",
        sa.Column("name", sa.String(length=200), primary_key=True),
        sa.Column("host", sa.String(length=200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("queue", sa.String(length=400), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("heartbeat_at", TIMESTAMP, nullable=False),
        sa.Column("current_job", sa.String(length=32), nullable=True),
        sa.Column("jobs_done", sa.Integer(), nullable=False),
        sa.Column("jobs_failed", sa.Integer(), nullable=False),
    )
    op.create_index("ix_workers_heartbeat", "workers", ["heartbeat_at"])


def create_jobs() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(length=32), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("endpoint", sa.String(length=40), nullable=False),
        sa.Column("params", JSON_TYPE, nullable=False),
        sa.Column("spec", JSON_TYPE, nullable=False),
        sa.Column("dataset_sha256", sa.String(length=64), sa.ForeignKey("datasets.sha256"), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("progress_message", sa.String(length=200), nullable=False),
        sa.Column("error_code", sa.String(length=60), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=200), nullable=True),
        sa.Column("estimated_seconds", sa.Float(), nullable=True),
        sa.Column("queue", sa.String(length=16), nullable=False, server_default="small"),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("dispatched_at", TIMESTAMP, nullable=True),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("heartbeat_at", TIMESTAMP, nullable=True),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.Column("stopping", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("rerun_of", sa.String(length=32), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')", name="job_status_valid"
        ),
        sa.CheckConstraint("progress >= 0 AND progress <= 1", name="job_progress_fraction"),
        sa.CheckConstraint("queue IN ('small', 'large')", name="job_queue_valid"),
    )
    for name, columns in (
        ("ix_jobs_user_created", ["user_id", "created_at"]),
        ("ix_jobs_status", ["status"]),
        ("ix_jobs_created", ["created_at", "id"]),
        ("ix_jobs_status_created", ["status", "created_at"]),
        ("ix_jobs_endpoint_created", ["endpoint", "created_at"]),
        ("ix_jobs_error_code", ["error_code"]),
        ("ix_jobs_queue_status_created", ["queue", "status", "created_at"]),
        ("ix_jobs_dataset_user", ["dataset_sha256", "user_id"]),
    ):
        op.create_index(name, "jobs", columns)
    op.create_index(
        "ix_jobs_user_holding",
        "jobs",
        ["user_id"],
        postgresql_where=sa.text(HOLDING),
        sqlite_where=sa.text(HOLDING),
    )


def create_webhook_outbox() -> None:
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "job_id", sa.String(length=32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column("message_id", sa.String(length=100), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("payload", JSON_TYPE, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("next_attempt_at", TIMESTAMP, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", TIMESTAMP, nullable=True),
        sa.Column("claim_token", sa.String(length=32), nullable=True),
        sa.Column("requested_by", sa.String(length=100), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="delivery_status_valid"),
    )
    op.create_index("ix_webhook_deliveries_job_id", "webhook_deliveries", ["job_id"])
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"])
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "delivery_id",
            sa.Integer(),
            sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("response_excerpt", sa.Text(), nullable=True),
    )
    op.create_index("ix_webhook_attempts_delivery_id", "webhook_attempts", ["delivery_id"])
