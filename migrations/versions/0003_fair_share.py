"""Fair share by recent use: the worker-seconds each job took, and an index of jobs by when they finished
(and their user), so a claim finds the recently finished jobs without reading older history
(`_fairest_claim` in shared/store/jobstore.py).

Plain ADD COLUMN and CREATE INDEX on both databases (no table rebuild on SQLite, so the storage-count
triggers of the initial migration stay).

Revision ID: 0003_fair_share
Revises: 0002_job_summary
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_fair_share"
down_revision = "0002_job_summary"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("worker_seconds", sa.Float(), nullable=True))
    op.create_index("ix_jobs_finished_user", "jobs", ["finished_at", "user_id"])


def downgrade() -> None:
    op.drop_index("ix_jobs_finished_user", table_name="jobs")
    op.drop_column("jobs", "worker_seconds")
