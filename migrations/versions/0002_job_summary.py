"""What a list of jobs shows without reading results or uploads, and jobs found by a prefix of their id

`jobs.data_filename` is the uploaded file's name as sent; `jobs.score_name` and `jobs.score_value` the
headline metric of a succeeded job's result, written in the transaction that stores it. Jobs that
succeeded before this revision have none (null).

`ix_jobs_user_id_prefix` answers a user's jobs whose id starts with a prefix (shared/store/job_ids.py):
on Postgres with `varchar_pattern_ops`, whose byte-wise operators `~>=~` and `~<~` the lookup uses
whatever the database's collation; SQLite compares bytes by default.

The columns are added and dropped in place (SQLite's ALTER TABLE ADD and DROP COLUMN), so the jobs table
is not rebuilt and keeps its storage-count triggers.

Revision ID: 0002_job_summary
Revises: 0001_initial
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_job_summary"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

COLUMNS = {"data_filename": sa.String(255), "score_name": sa.String(40), "score_value": sa.Float()}


def upgrade() -> None:
    for name, column_type in COLUMNS.items():
        op.add_column("jobs", sa.Column(name, column_type, nullable=True))
    op.create_index(
        "ix_jobs_user_id_prefix", "jobs", ["user_id", "id"], postgresql_ops={"id": "varchar_pattern_ops"}
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_user_id_prefix", table_name="jobs")
    for name in reversed(COLUMNS):
        if op.get_bind().dialect.name == "sqlite":
            op.execute(f"ALTER TABLE jobs DROP COLUMN {name}")  # in place: the triggers stay
        else:
            op.drop_column("jobs", name)
