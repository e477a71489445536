"""Model conversions: download formats made on first download

`model_conversions` holds, per kept model and format made on first download (onnx, mlflow, bundle), when
it was last asked for and why its conversion failed, if it did. Its rows go with their model.

Revision ID: 0007_model_conversions
Revises: 0006_kept_models
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_model_conversions"
down_revision = "0006_kept_models"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_conversions",
        sa.Column(
            "model_sha256",
            sa.String(64),
            sa.ForeignKey("models.sha256", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("format", sa.String(20), primary_key=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failure", sa.Text(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("model_conversions")
