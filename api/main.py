"""The FastAPI application: routes, the upload limit, the background loops, and the error answers
(`api.errors`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI
from fastapi.concurrency import run_in_threadpool

from api import dashboard, errors
from api.control_chars import refuse_control_characters
from api.routes import account, admin, health, job_models, jobs, metrics, predict, submit, webhooks
from api.uploads.size_limit import UploadLimitMiddleware
from api.waiting import JobWaiter
from shared.blobs.gc import sweep_orphans
from shared.blobs.store import blob_store
from shared.db import session_scope
from shared.dispatch.marks import DispatchMarks
from shared.dispatch.publish import sweep
from shared.settings import get_settings
from shared.store import workers
from shared.store.retention import purge_expired
from shared.webhooks.delivery import deliver_due

log = logging.getLogger("fitexplain.api")


PURGE_EVERY_SECONDS = 3600.0


def _forget_dead_workers() -> None:
    with session_scope() as session:
        workers.forget_dead(session, get_settings().worker_forget_seconds)


def _purge() -> None:
    settings = get_settings()
    with session_scope() as session:
        counts = purge_expired(session, settings.retention_days)
    if counts["jobs"]:
        log.info("retention: deleted %s", counts)
    with session_scope() as session:
        sweep_orphans(session, blob_store(settings), settings.orphan_blob_minutes)


async def _sweep_forever(interval: float) -> None:
    """Publish jobs the broker missed and requeue jobs of vanished workers; hourly, purge old jobs and
    sweep orphan blobs."""
    next_purge = 0.0
    while True:
        await asyncio.sleep(interval)
        try:
            await run_in_threadpool(sweep)
            await run_in_threadpool(_forget_dead_workers)
        except Exception as exc:  # the database or broker may be down: try again next time
            log.warning("sweep failed: %s", exc)
        if time.monotonic() >= next_purge:
            next_purge = time.monotonic() + PURGE_EVERY_SECONDS
            try:
                await run_in_threadpool(_purge)
            except Exception as exc:
                log.warning("retention purge failed: %s", exc)


async def _deliver_webhooks_forever(interval: float) -> None:
    """Send due webhooks from the outbox. Needs only the database: a broker outage delays nothing, and
    a delivery whose dispatcher was killed mid-attempt is taken again when its lease runs out."""
    while True:
        await asyncio.sleep(interval)
        try:
            await deliver_due()
        except Exception as exc:  # the database may be down: try again next time
            log.warning("webhook delivery pass failed: %s", exc)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    waiter = app.state.job_waiter = JobWaiter(settings.database_url)
    await waiter.start()
    marks = app.state.dispatch_marks = DispatchMarks()
    tasks = [
        asyncio.create_task(_sweep_forever(settings.sweep_seconds)),
        asyncio.create_task(_deliver_webhooks_forever(settings.webhook_poll_seconds)),
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await waiter.stop()
        await marks.flush()


def create_app() -> FastAPI:
    settings = get_settings()
    app = FastAPI(
        title="fitexplain",
        version="0.1.0",
        description="Fit machine-learning models on uploaded CSV files and explain them. "
        "POST a CSV to one of the four endpoints, poll `/jobs/{id}`, fetch `/jobs/{id}/result`.",
        lifespan=lifespan,
        dependencies=[Depends(refuse_control_characters)],
    )
    app.add_middleware(
        UploadLimitMiddleware,
        max_bytes=settings.max_upload_bytes,
        techtonique_prefix=submit.TECHTONIQUE_PREFIX,
    )
    errors.install(
        app,
        errors.Scopes(
            techtonique_prefix=submit.TECHTONIQUE_PREFIX,
            page_prefix=dashboard.PATH_PREFIX,
            render_page=dashboard.error_page,
        ),
    )

    own = (health, submit, jobs, job_models, predict, webhooks, account, admin, metrics)
    for module in own:
        app.include_router(module.router, responses=errors.ERROR_RESPONSES)
    app.include_router(submit.compat_router)  # FastAPI's own error bodies, as techtonique.net's
    dashboard.install(app)
    return app


app = create_app()
