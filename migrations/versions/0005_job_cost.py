"""jobs.estimated_seconds and jobs.queue: each job's estimated cost and the queue it was routed to

Revision ID: 0005
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("estimated_seconds", sa.Float(), nullable=True))
        batch.add_column(sa.Column("queue", sa.String(length=16), nullable=False, server_default="small"))
        batch.create_check_constraint("job_queue_valid", "queue IN ('small', 'large')")
    op.create_index("ix_jobs_queue_status_created", "jobs", ["queue", "status", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_queue_status_created", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint("job_queue_valid", type_="check")
        batch.drop_column("queue")
        batch.drop_column("estimated_seconds")
