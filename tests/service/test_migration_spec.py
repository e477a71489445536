"""The jobs.spec migration: rows written before it get the spec the API builds today from their params."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from api.endpoint_params import PARAMS_BY_ENDPOINT
from shared.ml.spec import JobSpec
from tests.migrations import just_before

pytestmark = [pytest.mark.service]

OLD_ROWS: list[tuple[str, dict[str, Any]]] = [
    (
        "mlclassification",
        {"interpretability": "none", "seed": 123, "n_hidden_features": 5, "base_model": "SVC"},
    ),
    ("mlregression", {"interpretability": "shap,permutation", "return_pi": True, "level": 90.0}),
    ("gbdtclassification", {"interpretability": "shap", "model_type": "xgboost", "max_depth": 6}),
    (
        "gbdtregression",
        {"interpretability": "shap", "model_type": "xgboost", "shap_interactions": True, "n_estimators": 30},
    ),
    ("gbdtregression", {}),  # every parameter left at its default
]


def test_old_rows_are_backfilled_with_the_spec_the_api_builds(database_url: str) -> None:
    config, revision, before, engine = just_before(database_url, "spec_from_params")
    metadata = sa.MetaData()
    metadata.reflect(engine, only=["users", "datasets", "jobs"])
    users, datasets, jobs = (metadata.tables[name] for name in ("users", "datasets", "jobs"))
    now = sa.func.now()
    with engine.begin() as connection:
        connection.execute(sa.insert(users).values(id=1, name="old", is_admin=False, created_at=now))
        connection.execute(
            sa.insert(datasets).values(
                sha256="0" * 64, content=b"x", size_bytes=1, n_rows=1, n_columns=1, created_at=now
            )
        )
        for index, (endpoint, params) in enumerate(OLD_ROWS):
            connection.execute(
                sa.insert(jobs).values(
                    id=f"job{index}",
                    user_id=1,
                    endpoint=endpoint,
                    params=params,
                    dataset_sha256="0" * 64,
                    status="queued",
                    progress=0.0,
                    progress_message="queued",
                    attempts=0,
                    created_at=now,
                )
            )
    command.upgrade(config, revision)
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT id, spec FROM jobs ORDER BY id")).all()
    engine.dispose()
    assert len(rows) == len(OLD_ROWS)
    for (job_id, stored), (endpoint, params) in zip(rows, OLD_ROWS, strict=True):
        stored = stored if isinstance(stored, dict) else json.loads(stored)
        assert stored["version"] == 1, job_id
        expected = PARAMS_BY_ENDPOINT[endpoint](**params).to_spec()
        assert JobSpec.from_json(stored) == expected, job_id
    command.downgrade(config, before)
