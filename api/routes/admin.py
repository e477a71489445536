"""Administrators' JSON view of every user's jobs: a paginated list and counts by status.

The HTML dashboard is at /dashboard (api/dashboard/); GET /admin redirects there.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import RedirectResponse
from pydantic import BaseModel
from sqlalchemy import func, select

from api import errors
from api.deps import AdminUser, SessionDep
from api.prometheus import jobs_by_status
from api.serialize import MAX_OFFSET, JobPublic, job_public
from shared.tables import Job, JobStatus, User

router = APIRouter(prefix="/admin", tags=["admin"])

ADMIN_RESPONSES = errors.documented(
    {401: "Missing or invalid token.", 403: "The token is not an administrator's."}
)


class AdminJob(JobPublic):
    user: str


class AdminJobPage(BaseModel):
    items: list[AdminJob]
    total: int
    limit: int
    offset: int


class AdminStats(BaseModel):
    jobs_by_status: dict[str, int]
    total: int
    users: int


@router.get("/jobs", response_model=AdminJobPage, responses=ADMIN_RESPONSES)
def all_jobs(
    session: SessionDep,
    admin: AdminUser,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    status_filter: Annotated[JobStatus | None, Query(alias="status")] = None,
    user: Annotated[
        str | None, Query(max_length=100, pattern=r"^[^\x00]*$", description="a user's name")
    ] = None,
) -> AdminJobPage:
    """Every user's jobs, newest first."""
    query = select(Job, User.name).join(User, User.id == Job.user_id)
    if status_filter is not None:
        query = query.where(Job.status == status_filter)
    if user is not None:
        query = query.where(User.name == user)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.execute(query.order_by(Job.created_at.desc(), Job.id).limit(limit).offset(offset)).all()
    items = [AdminJob(**job_public(job).model_dump(), user=name) for job, name in rows]
    return AdminJobPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/stats", response_model=AdminStats, responses=ADMIN_RESPONSES)
def stats(session: SessionDep, admin: AdminUser) -> AdminStats:
    """How many jobs are in each status, and how many users exist."""
    counts = jobs_by_status(session)
    users = session.scalar(select(func.count()).select_from(User)) or 0
    return AdminStats(jobs_by_status=counts, total=sum(counts.values()), users=users)


@router.get("", include_in_schema=False)
def dashboard() -> RedirectResponse:
    """The HTML dashboard moved to /dashboard (sign-in with a cookie; no token in the page's storage)."""
    return RedirectResponse("/dashboard", status_code=308)
