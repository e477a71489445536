"""Job bytes in the blob store: blob keys, stored sizes and checksums; inline bytes become optional

Rows written before this keep their bytes inline (blob_key NULL) and are read from there: the migration
does not need the blob store (nor S3) to be reachable, and runs in one statement per table. Results get
their stored (gzip) size and sha256 computed from the inline bytes, so quotas count them as before.
The downgrade copies every blob back inline (the blob store must then be reachable).

Revision ID: 0010
Revises: 0006
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0006"
branch_labels = None
depends_on = None

# (table, inline bytes column, primary key columns)
INLINE = (
    ("datasets", "content", ("sha256",)),
    ("job_results", "body_gzip", ("job_id",)),
    ("job_chunks", "body_gzip", ("job_id", "method", "index")),
    ("job_prepared", "body", ("job_id",)),
)


def _defer_foreign_keys() -> None:
    """SQLite rebuilds a table to alter a column: the jobs referencing `datasets` must not fail its
    drop. Foreign keys off (possible outside a transaction; the migration's connection is disposed
    after it), else deferred to the commit, when the rebuilt table holds the same rows again."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute("PRAGMA foreign_keys = OFF")
        op.execute("PRAGMA defer_foreign_keys = ON")


def upgrade() -> None:
    _defer_foreign_keys()
    for table, column, _ in INLINE:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("blob_key", sa.String(length=200), nullable=True))
            batch.alter_column(column, existing_type=sa.LargeBinary(), nullable=True)
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("format", sa.String(length=16), nullable=False, server_default="csv"))
    with op.batch_alter_table("job_results") as batch:
        batch.add_column(sa.Column("stored_bytes", sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("sha256", sa.String(length=64), nullable=True))
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(
            "UPDATE job_results SET stored_bytes = length(body_gzip), "
            "sha256 = encode(sha256(body_gzip), 'hex') WHERE body_gzip IS NOT NULL"
        )
        return
    rows = bind.execute(sa.text("SELECT job_id, body_gzip FROM job_results WHERE body_gzip IS NOT NULL"))
    for job_id, body in rows.all():
        bind.execute(
            sa.text("UPDATE job_results SET stored_bytes = :size, sha256 = :digest WHERE job_id = :id"),
            {"size": len(body), "digest": hashlib.sha256(body).hexdigest(), "id": job_id},
        )


def downgrade() -> None:
    _defer_foreign_keys()
    bind = op.get_bind()
    for table, column, keys in INLINE:
        columns = ", ".join(f'"{key}"' for key in keys)
        rows = bind.execute(sa.text(f"SELECT blob_key, {columns} FROM {table} WHERE blob_key IS NOT NULL"))
        found = rows.all()
        if found:
            from shared.blobs.store import current_store  # only needed when blobs must come back inline

            store = current_store()
            where = " AND ".join(f'"{key}" = :{key}' for key in keys)
            for blob_key, *values in found:
                bind.execute(
                    sa.text(f"UPDATE {table} SET {column} = :body WHERE {where}"),
                    {"body": store.get_bytes(blob_key), **dict(zip(keys, values, strict=True))},
                )
    with op.batch_alter_table("job_results") as batch:
        batch.drop_column("sha256")
        batch.drop_column("stored_bytes")
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("format")
    for table, column, _ in INLINE:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("blob_key")
            if table != "job_chunks":  # a pending chunk has no part: that column was always nullable
                batch.alter_column(column, existing_type=sa.LargeBinary(), nullable=False)
