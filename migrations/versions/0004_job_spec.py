"""jobs.spec: the validated JobSpec as versioned JSON, which the worker runs (params stay for display)

Existing rows are backfilled from their stored query parameters by a frozen copy of the mapping that
the API used when they were submitted, so a job queued before the upgrade still runs after it. The
copy lives here, not in shared/, because a migration must keep doing what it did when it was written.

Revision ID: 0004
Revises: 0009
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0007"
branch_labels = None
depends_on = None

JSON_TYPE = sa.JSON().with_variant(JSONB(), "postgresql")
DEFAULT_BASE_MODEL = {"classification": "RandomForestClassifier", "regression": "ElasticNet"}


def spec_from_params(endpoint: str, params: dict[str, Any]) -> dict[str, Any]:
    """The version-1 spec JSON for a job row written before specs were stored."""
    task = "classification" if endpoint.endswith("classification") else "regression"
    family = "gbdt" if endpoint.startswith("gbdt") else "ml"
    asked = str(params.get("interpretability") or "none").split(",")
    methods = list(dict.fromkeys(m.strip().lower() for m in asked if m.strip() and m.strip() != "none"))
    return {
        "version": 1,
        "model": {
            "task": task,
            "family": family,
            "base_model": params.get("base_model", DEFAULT_BASE_MODEL[task]) if family == "ml" else None,
            "n_hidden_features": int(params.get("n_hidden_features", 5)),
            "model_type": params.get("model_type", "lightgbm"),
            "n_estimators": int(params.get("n_estimators", 100)),
            "learning_rate": float(params.get("learning_rate", 0.1)),
            "max_depth": int(params.get("max_depth", 3)),
            "seed": int(params.get("seed", 123)),
        },
        "predict_proba": bool(params.get("predict_proba", False)),
        "return_pi": bool(params.get("return_pi", False)),
        "level": float(params.get("level", 95.0)),
        "pi_method": params.get("pi_method", "splitconformal"),
        "interpretability": methods,
        "shap_interactions": bool(params.get("shap_interactions", False)),
    }


def upgrade() -> None:
    op.add_column("jobs", sa.Column("spec", JSON_TYPE, nullable=True))
    jobs = sa.table(
        "jobs",
        sa.column("id", sa.String()),
        sa.column("endpoint", sa.String()),
        sa.column("params", JSON_TYPE),
        sa.column("spec", JSON_TYPE),
    )
    connection = op.get_bind()
    rows = connection.execute(sa.select(jobs.c.id, jobs.c.endpoint, jobs.c.params)).all()
    for job_id, endpoint, params in rows:
        spec = spec_from_params(endpoint, params or {})
        connection.execute(sa.update(jobs).where(jobs.c.id == job_id).values(spec=spec))
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("spec", existing_type=JSON_TYPE, nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("spec")
