"""jobs.dataset_sha256 nullable: a cancelled job lets go of its upload at once

Revision ID: 0007
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("dataset_sha256", existing_type=sa.String(length=64), nullable=True)


def downgrade() -> None:
    # Cancelled jobs without an upload cannot satisfy NOT NULL: they go (with their events).
    op.execute("DELETE FROM jobs WHERE dataset_sha256 IS NULL")
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("dataset_sha256", existing_type=sa.String(length=64), nullable=False)
