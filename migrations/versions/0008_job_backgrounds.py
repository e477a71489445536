"""Job backgrounds: the SHAP background file sent with a job

`job_backgrounds` holds, per job that was sent one, its background file's feature columns as Parquet (at
most FITEXPLAIN_MAX_BACKGROUND_ROWS rows), with the sha256 of the file as sent. Its row goes with its job.

Revision ID: 0008_job_backgrounds
Revises: 0007_model_conversions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_job_backgrounds"
down_revision = "0007_model_conversions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_backgrounds",
        sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("parquet", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("job_backgrounds")
