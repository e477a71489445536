"""Which worker computed each fan-out chunk

`job_chunks.worker` names the worker (the workers table's name, `host:pid`) that last claimed the chunk,
so an operator (and the cluster tests) can see a fanned-out job's chunks spread over machines. Chunks
claimed before this revision have none (null).

Revision ID: 0005_chunk_worker
Revises: 0004_upload_rejections
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_chunk_worker"
down_revision = "0004_upload_rejections"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("job_chunks", sa.Column("worker", sa.String(200), nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE job_chunks DROP COLUMN worker")  # in place, as the other revisions do
    else:
        op.drop_column("job_chunks", "worker")
