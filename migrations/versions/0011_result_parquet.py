"""job_results.parquet_key and parquet_bytes: a result's Parquet form, stored beside its JSON

Results of many rows get their Parquet form written by the worker with the JSON (shared.results.formats), so a
Parquet download streams a blob instead of converting the JSON on request. Older rows have none (NULL,
0 bytes) and are converted as before. The Parquet blobs live under the same `results/<job>/` prefix as
the JSON: after a downgrade no row references them, so the orphan sweep removes them.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

PARQUET_COLUMNS = ("parquet_key", "parquet_bytes")


def upgrade() -> None:
    with op.batch_alter_table("job_results") as batch:
        batch.add_column(sa.Column("parquet_key", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("parquet_bytes", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("job_results") as batch:
        batch.drop_column("parquet_bytes")
        batch.drop_column("parquet_key")
