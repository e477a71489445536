"""Kept models: every succeeded job's fitted model and its card

`models` holds each kept model once per content (its pickle's sha256; the blob in the blob store),
`model_files` its download files (one per format); `job_models` holds each succeeded job's model card
and the model it keeps (none when the model was over FITEXPLAIN_MAX_MODEL_BYTES). `storage_usage`
counts, per user, the models their jobs keep, each once however many jobs share it (as uploads are
counted), in `models_bytes` and `models`:

- a card inserted with a model its user's other jobs do not keep yet adds the model's stored bytes;
- a job deleted whose model no other of its user's remaining jobs keeps takes them off, BEFORE the job
  row goes (its card goes next, by the cascade), joining `jobs` so that the jobs the same statement
  deleted before it no longer count (the initial migration's rule for uploads).

Cards go only with their jobs. On Postgres the insert trigger first locks the user's counts, so two
transactions keeping the same model for one user cannot both count it.

Revision ID: 0006_kept_models
Revises: 0005_chunk_worker
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006_kept_models"
down_revision = "0005_chunk_worker"
branch_labels = None
depends_on = None

JSON_TYPE = sa.JSON().with_variant(JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)

MODEL_KEPT = """
    UPDATE storage_usage SET
        models_bytes = models_bytes + (SELECT stored_bytes FROM models WHERE sha256 = NEW.model_sha256),
        models = models + 1
    WHERE user_id = NEW.user_id AND NEW.model_sha256 IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM job_models WHERE model_sha256 = NEW.model_sha256 AND user_id = NEW.user_id
        AND job_id <> NEW.job_id);"""
MODEL_GONE = """
    UPDATE storage_usage SET
        models_bytes = models_bytes - (
            SELECT models.stored_bytes FROM job_models JOIN models ON models.sha256 = job_models.model_sha256
            WHERE job_models.job_id = OLD.id),
        models = models - 1
    WHERE user_id = OLD.user_id
    AND EXISTS (SELECT 1 FROM job_models WHERE job_id = OLD.id AND model_sha256 IS NOT NULL)
    AND NOT EXISTS (
        SELECT 1 FROM job_models AS other JOIN jobs ON jobs.id = other.job_id
        WHERE other.user_id = OLD.user_id AND other.job_id <> OLD.id
        AND other.model_sha256 = (SELECT model_sha256 FROM job_models WHERE job_id = OLD.id));"""

POSTGRES_FUNCTIONS = {
    "storage_usage_of_job_models": f"""
BEGIN
    PERFORM 1 FROM storage_usage WHERE user_id = NEW.user_id FOR UPDATE;
    {MODEL_KEPT}
    RETURN NULL;
END""",
    "storage_usage_of_deleted_models": f"""
BEGIN
    PERFORM 1 FROM storage_usage WHERE user_id = OLD.user_id FOR UPDATE;
    {MODEL_GONE}
    RETURN OLD;
END""",
}
POSTGRES_TRIGGERS = {  # name (that of its function too): (when and on what, table)
    "storage_usage_of_job_models": ("AFTER INSERT", "job_models"),
    "storage_usage_of_deleted_models": ("BEFORE DELETE", "jobs"),
}
SQLITE_TRIGGERS = {  # name: (when and on what, body)
    "storage_usage_model_kept": ("AFTER INSERT ON job_models", MODEL_KEPT),
    "storage_usage_model_gone": ("BEFORE DELETE ON jobs", MODEL_GONE),
}


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("blob_key", sa.String(200), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("stored_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
    )
    op.create_table(
        "model_files",
        sa.Column(
            "model_sha256",
            sa.String(64),
            sa.ForeignKey("models.sha256", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("format", sa.String(20), primary_key=True),
        sa.Column("blob_key", sa.String(200), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("filename", sa.String(100), nullable=False),
        sa.Column("media_type", sa.String(100), nullable=False),
        sa.Column("headers", JSON_TYPE, nullable=False),
    )
    op.create_table(
        "job_models",
        sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("model_sha256", sa.String(64), sa.ForeignKey("models.sha256"), nullable=True),
        sa.Column("card", JSON_TYPE, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
    )
    op.create_index("ix_job_models_model_user", "job_models", ["model_sha256", "user_id"])
    op.add_column(
        "storage_usage", sa.Column("models_bytes", sa.BigInteger(), nullable=False, server_default="0")
    )
    op.add_column("storage_usage", sa.Column("models", sa.Integer(), nullable=False, server_default="0"))
    if op.get_bind().dialect.name == "postgresql":
        for name, body in POSTGRES_FUNCTIONS.items():
            op.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ {body} $$")
        for name, (event, table) in POSTGRES_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {event} ON {table} FOR EACH ROW EXECUTE FUNCTION {name}()")
    else:
        for name, (event, body) in SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {event} BEGIN {body} END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, (_, table) in POSTGRES_TRIGGERS.items():
            op.execute(f"DROP TRIGGER {name} ON {table}")
        for name in POSTGRES_FUNCTIONS:
            op.execute(f"DROP FUNCTION {name}()")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE storage_usage DROP COLUMN models")  # in place, as the other revisions do
        op.execute("ALTER TABLE storage_usage DROP COLUMN models_bytes")
    else:
        op.drop_column("storage_usage", "models")
        op.drop_column("storage_usage", "models_bytes")
    op.drop_index("ix_job_models_model_user", "job_models")
    op.drop_table("job_models")
    op.drop_table("model_files")
    op.drop_table("models")
