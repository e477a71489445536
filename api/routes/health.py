"""Liveness (cheap), readiness (database and broker reachable) and the model allowlists."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from shared.db import get_engine, session_scope
from shared.dispatch.queue import get_celery
from shared.settings import get_settings
from shared.store import workers

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _check_database() -> str:
    try:
        with get_engine().connect() as connection:
            connection.execute(text("SELECT 1"))
        return "ok"
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}"


def _check_broker() -> str:
    try:
        with get_celery().connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
        return "ok"
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}"


def _count_workers() -> int | None:
    try:
        with session_scope() as session:
            return workers.alive_count(session, get_settings().stale_after_seconds)
    except Exception:
        return None


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, str]
    workers_alive: int | None = None  # None when the database cannot be asked
    notes: list[str] = []


class NotReady(Readiness):
    """The readiness checks, and the error body's `code` and `detail` beside them."""

    code: str = "not_ready"
    detail: str


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": NotReady, "description": "The database or the broker is unreachable."}},
)
async def readyz() -> JSONResponse:
    checks = {
        "database": await run_in_threadpool(_check_database),
        "broker": await run_in_threadpool(_check_broker),
    }
    ready = all(value == "ok" for value in checks.values())
    alive = await run_in_threadpool(_count_workers) if checks["database"] == "ok" else None
    # No worker does not make the API unready (it still accepts and stores jobs), but it is said.
    notes = ["no worker is alive: jobs wait in the queue until one starts"] if alive == 0 else []
    readiness = Readiness(ready=ready, checks=checks, workers_alive=alive, notes=notes)
    if ready:
        return JSONResponse(readiness.model_dump())
    failing = ", ".join(f"{name} {value}" for name, value in checks.items() if value != "ok")
    not_ready = NotReady(**readiness.model_dump(), detail=f"Not ready: {failing}.")
    return JSONResponse(not_ready.model_dump(), status_code=503)


@router.get("/models")
def models() -> dict[str, list[str]]:
    """The scikit-learn estimators that `base_model` accepts, and the boosters `model_type` accepts."""
    from shared.ml.registry import classifier_names, regressor_names
    from shared.ml.spec import GBDT_MODEL_TYPES

    return {
        "classifiers": classifier_names(),
        "regressors": regressor_names(),
        "gbdt_model_types": list(GBDT_MODEL_TYPES),
    }
