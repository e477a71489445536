"""storage_usage: each user's storage counted as it changes, and indexes for the per-submit counts

Every submit checks the user's storage quota and unfinished jobs under the user's row lock. Both were
counted over all the user's jobs: 10 ms a submit at 10,000 kept jobs, 31 ms at 50,000
(benchmarks/submit_limits.py), while the user's other submits waited on the lock. Now:

- `storage_usage` holds each user's counts (`GET /account/usage`'s numbers: uploads their jobs reference,
  counted once each, and results), kept by triggers on `jobs` and `job_results`, so that every way a row
  changes (a submit, a cancel that releases the upload, DELETE, retention, a cascade) is counted, by
  whichever process does it. Backfilled here from the same aggregates the API computed before.
- `ix_jobs_user_holding`, a partial index of the jobs that hold a worker (`shared.limits.holds_a_worker`).
- `ix_jobs_dataset_user` (dataset, user) replaces `ix_jobs_dataset_sha256`: the triggers ask whether
  another job of the same user keeps an upload, and `release_upload` whether any job does.

The jobs trigger runs BEFORE each row changes: it then sees the rows that the same statement changed
before it (a retention DELETE of two jobs of one user on one upload counts the upload off once), and the
job's result row, which a cascade deletes next. On Postgres it first locks the user's counts, so two
transactions releasing the same upload cannot both see the other's job still there.

A later migration that rebuilds `jobs`, `job_results` or `users` on SQLite (`batch_alter_table` copies
the table) drops these triggers with it and must create them again.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

HOLDING = "status IN ('queued', 'running') OR stopping"

BACKFILL = """
INSERT INTO storage_usage (user_id, uploads_bytes, uploads, results_bytes, results)
SELECT users.id,
    COALESCE((SELECT SUM(d.size_bytes) FROM datasets d
              WHERE d.sha256 IN (SELECT j.dataset_sha256 FROM jobs j WHERE j.user_id = users.id)), 0),
    (SELECT COUNT(*) FROM datasets d
     WHERE d.sha256 IN (SELECT j.dataset_sha256 FROM jobs j WHERE j.user_id = users.id)),
    COALESCE((SELECT SUM(r.stored_bytes) FROM job_results r JOIN jobs j ON j.id = r.job_id
              WHERE j.user_id = users.id), 0),
    (SELECT COUNT(*) FROM job_results r JOIN jobs j ON j.id = r.job_id WHERE j.user_id = users.id)
FROM users
"""

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

POSTGRES = [
    f"""
CREATE FUNCTION storage_usage_of_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
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
END $$""",
    f"""
CREATE FUNCTION storage_usage_of_results() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        {RESULT_REMOVED}
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        {RESULT_ADDED}
    END IF;
    RETURN NULL;
END $$""",
    f"""
CREATE FUNCTION storage_usage_of_users() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {USER_ADDED}
    RETURN NULL;
END $$""",
    "CREATE TRIGGER storage_usage_of_jobs BEFORE INSERT OR DELETE OR UPDATE OF dataset_sha256 ON jobs "
    "FOR EACH ROW EXECUTE FUNCTION storage_usage_of_jobs()",
    "CREATE TRIGGER storage_usage_of_results AFTER INSERT OR DELETE OR UPDATE OF stored_bytes, job_id "
    "ON job_results FOR EACH ROW EXECUTE FUNCTION storage_usage_of_results()",
    "CREATE TRIGGER storage_usage_of_users AFTER INSERT ON users "
    "FOR EACH ROW EXECUTE FUNCTION storage_usage_of_users()",
]
POSTGRES_DROP = [
    "DROP TRIGGER storage_usage_of_users ON users",
    "DROP TRIGGER storage_usage_of_results ON job_results",
    "DROP TRIGGER storage_usage_of_jobs ON jobs",
    "DROP FUNCTION storage_usage_of_users()",
    "DROP FUNCTION storage_usage_of_results()",
    "DROP FUNCTION storage_usage_of_jobs()",
]

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
SQLITE = [f"CREATE TRIGGER {name} {event} BEGIN {body} END" for name, (event, body) in SQLITE_TRIGGERS.items()]
SQLITE_DROP = [f"DROP TRIGGER {name}" for name in SQLITE_TRIGGERS]


def upgrade() -> None:
    op.create_table(
        "storage_usage",
        sa.Column(
            "user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("uploads_bytes", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("uploads", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("results_bytes", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("results", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_index("ix_jobs_dataset_user", "jobs", ["dataset_sha256", "user_id"])
    op.drop_index("ix_jobs_dataset_sha256", table_name="jobs")
    op.create_index(
        "ix_jobs_user_holding",
        "jobs",
        ["user_id"],
        postgresql_where=sa.text(HOLDING),
        sqlite_where=sa.text(HOLDING),
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:  # no job or result may change between the backfill and the triggers
        op.execute("LOCK TABLE users, jobs, job_results IN SHARE ROW EXCLUSIVE MODE")
    for statement in POSTGRES if postgres else SQLITE:
        op.execute(statement)
    op.execute(BACKFILL)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in POSTGRES_DROP if postgres else SQLITE_DROP:
        op.execute(statement)
    op.drop_index("ix_jobs_user_holding", table_name="jobs")
    op.create_index("ix_jobs_dataset_sha256", "jobs", ["dataset_sha256"])
    op.drop_index("ix_jobs_dataset_user", table_name="jobs")
    op.drop_table("storage_usage")
