"""Results kept only as Parquet

`job_results.json_stored` is false for a result kept only as its Parquet form (a predict job's result of
many rows, written batch by batch): its JSON is written from the Parquet form on request, and `blob_key`
names that Parquet blob. Every result stored before this revision has its JSON (true).

Revision ID: 0009_parquet_only_results
Revises: 0008_job_backgrounds
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_parquet_only_results"
down_revision = "0008_job_backgrounds"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "job_results", sa.Column("json_stored", sa.Boolean(), nullable=False, server_default=sa.true())
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE job_results DROP COLUMN json_stored")  # in place, as the other revisions do
    else:
        op.drop_column("job_results", "json_stored")
