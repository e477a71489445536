"""The dashboard's buttons: cancel, re-run, delete, redeliver the webhook. POST forms only, each with a
CSRF token (and the browser's confirmation, asked by static/dashboard.js); each recorded as a job event
naming who."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from api.dashboard.job_actions import ActionRefused, cancel_job, delete_finished_job, rerun_job
from api.dashboard.pages import owner_of
from api.dashboard.queries import visible_job
from api.dashboard.session import CsrfChecked, DashboardUser
from shared.db import session_scope
from shared.dispatch.publish import dispatch
from shared.limits import RateLimited
from shared.settings import get_settings
from shared.tables import User
from shared.webhooks.delivery import RedeliveryRefused, redeliver

router = APIRouter(prefix="/dashboard/jobs", include_in_schema=False, dependencies=[CsrfChecked])


def _act(job_id: str, user: User, action: str) -> str:
    """Run one action in one transaction; returns where to go next."""
    with session_scope() as session:
        job = visible_job(session, job_id, owner_of(user))
        if job is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"No job {job_id!r} for this user.")
        try:
            if action == "cancel":
                cancel_job(session, job, user.name)
                target = job.id
            elif action == "rerun":
                new = rerun_job(session, job, user.name, get_settings())
                target, queue = new.id, new.queue
            elif action == "redeliver":
                redeliver(session, job.id, actor=user.name)  # recorded as a `webhook_redeliver` event
                target = job.id
            else:
                delete_finished_job(session, job, user.name)
                return "/dashboard/jobs"
        except (ActionRefused, RedeliveryRefused) as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
        except RateLimited as exc:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                detail=exc.message,
                headers={"Retry-After": str(exc.retry_after)},
            ) from None
    if action == "rerun":
        dispatch(target, queue)  # committed first: a broker outage leaves it for the sweep to publish
    return f"/dashboard/jobs/{target}"


async def _respond(job_id: str, user: User, action: str) -> Response:
    target = await run_in_threadpool(_act, job_id, user, action)
    return RedirectResponse(target, status.HTTP_303_SEE_OTHER)


@router.post("/{job_id}/cancel")
async def cancel(job_id: str, user: DashboardUser) -> Response:
    return await _respond(job_id, user, "cancel")


@router.post("/{job_id}/rerun")
async def rerun(job_id: str, user: DashboardUser) -> Response:
    return await _respond(job_id, user, "rerun")


@router.post("/{job_id}/delete")
async def delete(job_id: str, user: DashboardUser) -> Response:
    return await _respond(job_id, user, "delete")


@router.post("/{job_id}/redeliver")
async def redeliver_webhook(job_id: str, user: DashboardUser) -> Response:
    return await _respond(job_id, user, "redeliver")
