"""workers table (one row per worker process, heartbeated); re-run links and list indexes for the dashboard

Revision ID: 0009
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("host", sa.String(length=200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("queue", sa.String(length=400), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("current_job", sa.String(length=32), nullable=True),
        sa.Column("jobs_done", sa.Integer(), nullable=False),
        sa.Column("jobs_failed", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_index("ix_workers_heartbeat", "workers", ["heartbeat_at"])
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("rerun_of", sa.String(length=32), nullable=True))
    # The dashboard's job list: newest first overall, and within a status or an endpoint.
    op.create_index("ix_jobs_created", "jobs", ["created_at", "id"])
    op.create_index("ix_jobs_status_created", "jobs", ["status", "created_at"])
    op.create_index("ix_jobs_endpoint_created", "jobs", ["endpoint", "created_at"])
    op.create_index("ix_jobs_error_code", "jobs", ["error_code"])


def downgrade() -> None:
    op.drop_index("ix_jobs_error_code", "jobs")
    op.drop_index("ix_jobs_endpoint_created", "jobs")
    op.drop_index("ix_jobs_status_created", "jobs")
    op.drop_index("ix_jobs_created", "jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("rerun_of")
    op.drop_index("ix_workers_heartbeat", "workers")
    op.drop_table("workers")
