"""The dashboard's pages: sign-in, overview, jobs, one job, workers.

A page asked with `?fragment=1` answers only its live part (the same template the page includes), which
static/dashboard.js fetches every few seconds to refresh the page without reloading it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.dashboard import charts, queries
from api.dashboard.job_actions import can_rerun
from api.dashboard.rendering import render
from api.dashboard.result_view import metrics_view
from api.dashboard.session import (
    CsrfChecked,
    DashboardAdmin,
    DashboardUser,
    SameOrigin,
    clear_session,
    set_session,
    signed_in_user,
)
from api.deps import SessionDep, SettingsDep
from api.model_files import model_file_response, public_card
from api.queue_depth import queue_depth
from api.serialize import MAX_OFFSET
from shared.auth import user_for_token
from shared.db import session_scope
from shared.ml.model.predict.spec import is_predict
from shared.settings import get_settings
from shared.store import kept_models, workers
from shared.tables import FINISHED, Job, JobStatus, User

router = APIRouter(prefix="/dashboard", include_in_schema=False)

PAGE_SIZES = (20, 50, 100)
Fragment = Annotated[bool, Query()]


def owner_of(user: User) -> int | None:
    """The scope of everything a viewer sees: all jobs for an admin, else their own."""
    return None if user.is_admin else user.id


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_form(request: Request) -> Response:
    if signed_in_user(request) is not None:
        return RedirectResponse("/dashboard", status.HTTP_303_SEE_OTHER)
    return render(request, "sign_in.html", None)


@router.post("/sign-in", response_class=HTMLResponse, dependencies=[SameOrigin])
def sign_in(request: Request, token: Annotated[str, Form(max_length=200)] = "") -> Response:
    token = token.strip()
    with session_scope() as session:
        user = user_for_token(session, token) if token else None
    if user is None:
        message = (
            "Paste a token made by `fitexplain create-token NAME`."
            if not token
            else ("That token is unknown, revoked or expired.")
        )
        return render(request, "sign_in.html", None, status.HTTP_401_UNAUTHORIZED, error=message)
    response = RedirectResponse("/dashboard", status.HTTP_303_SEE_OTHER)
    set_session(response, request, token)
    return response


@router.post("/sign-out", dependencies=[CsrfChecked])
def sign_out(request: Request) -> Response:
    response = RedirectResponse("/dashboard/sign-in", status.HTTP_303_SEE_OTHER)
    clear_session(response, request)
    return response


@router.get("", response_class=HTMLResponse)
async def overview(request: Request, user: DashboardUser, fragment: Fragment = False) -> Response:
    def read() -> dict[str, Any]:
        with session_scope() as session:
            numbers = queries.overview(session, owner_of(user))
            alive = workers.alive_count(session, get_settings().stale_after_seconds)
            # The whole queue is the operator's to see; a user sees where their own next job waits.
            depth = queue_depth(session) if user.is_admin else None
            position = None if user.is_admin else queries.queue_position(session, user.id)
        throughput = charts.stacked_columns(
            "throughput",
            "Jobs finished per 5 minutes, last hour",
            numbers.bin_labels,
            {
                "succeeded": numbers.succeeded_per_bin,
                "failed": numbers.failed_per_bin,
                "cancelled": numbers.cancelled_per_bin,
            },
        )
        return {
            "numbers": numbers,
            "workers_alive": alive,
            "queue_depth": depth,
            "queue_position": position,
            "throughput": throughput,
        }

    context = await run_in_threadpool(read)
    template = "parts/overview.html" if fragment else "overview.html"
    return render(request, template, user, **context)


def _parse_time(name: str, value: str) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"{name}: {value!r} is not a date and time (YYYY-MM-DDTHH:MM, UTC).",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _filters(
    user: User,
    status_value: str,
    endpoint: str,
    user_name: str,
    error_code: str,
    since: str,
    until: str,
    q: str,
) -> queries.JobFilters:
    if status_value and status_value not in JobStatus.__members__:
        allowed = ", ".join(JobStatus.__members__)
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"status: {status_value!r} is not one of {allowed}."
        )
    prefix = q.strip().lower()
    if prefix and not all(c in "0123456789abcdef" for c in prefix):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"q: search by job id, hexadecimal digits only (got {q!r}).",
        )
    return queries.JobFilters(
        status=JobStatus(status_value) if status_value else None,
        endpoint=endpoint or None,
        user=user_name if user.is_admin and user_name else None,
        error_code=error_code or None,
        since=_parse_time("since", since),
        until=_parse_time("until", until),
        id_prefix=prefix or None,
    )


Text = Annotated[str, Query(max_length=100)]


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(
    request: Request,
    session: SessionDep,
    user: DashboardUser,
    status_value: Annotated[str, Query(alias="status", max_length=20)] = "",
    endpoint: Text = "",
    user_name: Annotated[str, Query(alias="user", max_length=100)] = "",
    error_code: Text = "",
    since: Text = "",
    until: Text = "",
    q: Annotated[str, Query(max_length=32)] = "",
    limit: Annotated[int, Query()] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    fragment: Fragment = False,
) -> Response:
    if limit not in PAGE_SIZES:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"limit: one of {', '.join(map(str, PAGE_SIZES))}."
        )
    filters = _filters(user, status_value, endpoint, user_name, error_code, since, until, q)
    rows, total = queries.list_jobs(session, owner_of(user), filters, limit, offset)
    query = {k: v for k, v in request.query_params.items() if k not in ("offset", "fragment")}
    context: dict[str, Any] = {
        "rows": rows,
        "total": total,
        "limit": limit,
        "offset": offset,
        "query": query,
        "form": {
            "status": status_value,
            "endpoint": endpoint,
            "user": user_name,
            "error_code": error_code,
            "since": since,
            "until": until,
            "q": q,
        },
    }
    if fragment:
        return render(request, "parts/jobs.html", user, **context)
    return render(
        request, "jobs.html", user, choices=queries.filter_choices(session, owner_of(user)), **context
    )


def _job_or_404(session: SessionDep, job_id: str, user: User) -> Job:
    job = queries.visible_job(session, job_id, owner_of(user))
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"No job {job_id!r} for this user.")
    return job


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(
    job_id: str,
    request: Request,
    session: SessionDep,
    user: DashboardUser,
    fragment: Annotated[Literal["", "status", "timeline"], Query()] = "",
) -> Response:
    """The whole page, or one of its live parts: `fragment=status` (status, error, actions) or
    `fragment=timeline`."""
    job = _job_or_404(session, job_id, user)
    detail = queries.job_detail(session, job)
    context: dict[str, Any] = {
        "detail": detail,
        "job": job,
        "finished": job.status in FINISHED,
        "rerunnable": can_rerun(job),
    }
    if fragment:
        part = "parts/job_live.html" if fragment == "status" else "parts/job_timeline.html"
        return render(request, part, user, **context)
    result = queries.load_result(session, job) if job.status == JobStatus.succeeded else None
    source_job = job.spec.get("source_job") if is_predict(job.spec) else None
    fitted = result is not None and source_job is None
    card = kept_models.card_of(session, job.id) if job.status == JobStatus.succeeded else None
    context.update(
        model=None if card is None else public_card(card),
        result=result,
        metrics=metrics_view(result) if fitted and result is not None else None,
        charts=charts.explanation_charts(result) if fitted and result is not None else [],
        source_job=source_job,
        reasons=reasons_view(result) if source_job is not None and result is not None else None,
    )
    return render(request, "job.html", user, **context)


#: Explained rows a predict job's page lists with their reasons (the result holds them all).
SHOWN_REASONS = 50


def reasons_view(result: dict[str, Any]) -> list[dict[str, Any]]:
    """A predict job's first explained rows: row number, id, prediction and top reasons."""
    ids = result.get("ids")
    y_pred = result.get("y_pred") or []
    rows = (result.get("explained_rows") or [])[:SHOWN_REASONS]
    return [
        {
            "row": row,
            "id": ids[row] if isinstance(ids, list) else None,
            "y_pred": y_pred[row] if row < len(y_pred) else None,
            "reasons": reasons,
        }
        for row, reasons in zip(rows, result.get("reasons") or [], strict=False)
    ]


@router.get("/jobs/{job_id}/model/{fmt}")
def job_model_file(
    request: Request, job_id: str, fmt: str, session: SessionDep, user: DashboardUser
) -> Response:
    """The job's model file in format `fmt` (the job page's download links), as the API serves it; while a
    worker writes it, a page that asks again after the API's Retry-After, so the download starts by itself."""
    response = model_file_response(session, _job_or_404(session, job_id, user), fmt)
    if response.status_code != status.HTTP_202_ACCEPTED:
        return response
    retry_after = response.headers["Retry-After"]
    page = render(
        request,
        "model_converting.html",
        user,
        status.HTTP_202_ACCEPTED,
        job_id=job_id,
        fmt=fmt,
        retry_after=retry_after,
    )
    page.headers["Retry-After"] = retry_after
    return page


@router.get("/workers", response_class=HTMLResponse)
def workers_page(
    request: Request,
    session: SessionDep,
    user: DashboardAdmin,
    settings: SettingsDep,
    fragment: Fragment = False,
) -> Response:
    rows = workers.all_workers(session)
    stale_after = settings.stale_after_seconds
    now = datetime.now(UTC)
    alive = {row.name: (now - row.heartbeat_at).total_seconds() < stale_after for row in rows}
    template = "parts/workers.html" if fragment else "workers.html"
    return render(request, template, user, workers=rows, alive=alive, now=now)
