"""Each user's refused uploads, as a leaky bucket that the rejected-upload budget drains
(`shared.limits.charge_rejected_upload`): one row per user who has had an upload refused.

Revision ID: 0004_upload_rejections
Revises: 0003_fair_share
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_upload_rejections"
down_revision = "0003_fair_share"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "upload_rejections",
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("level", sa.Float(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("upload_rejections")
