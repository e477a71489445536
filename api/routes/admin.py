"""Administrators' view of every user's jobs: a paginated list, counts by status, and a small HTML page.

The page itself is static and public; its data comes from /admin/jobs and /admin/stats, which need an
admin token (pasted into the page and kept in the tab's sessionStorage only).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel
from sqlalchemy import func, select

from api.deps import AdminUser, SessionDep
from api.serialize import MAX_OFFSET, JobPublic, job_public
from shared.prometheus import jobs_by_status
from shared.tables import Job, JobStatus, User

router = APIRouter(prefix="/admin", tags=["admin"])

ADMIN_RESPONSES: dict[int | str, dict[str, object]] = {
    401: {"description": "Missing or invalid token."},
    403: {"description": "The token is not an administrator's."},
}


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


@router.get("", response_class=HTMLResponse, include_in_schema=False)
def dashboard() -> HTMLResponse:
    return HTMLResponse(DASHBOARD_HTML, headers={"Cache-Control": "no-store", "Content-Security-Policy": CSP})


# Inline script and style only; data only from this origin; never framed (the page holds a token).
CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; frame-ancestors 'none'"
)


DASHBOARD_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fitexplain admin</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body{font:14px system-ui,sans-serif;margin:2em;color:#222}
 table{border-collapse:collapse;width:100%;margin-top:1em}
 th,td{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;font-variant-numeric:tabular-nums}
 input,select,button{font:inherit;padding:2px 6px} #error{color:#b00} .failed{color:#b00}
 .succeeded{color:#070} #stats span{margin-right:1.5em}
</style></head>
<body>
<h1>fitexplain admin</h1>
<form id="login"><input id="token" type="password" size="50" placeholder="admin token" autocomplete="off">
 <button>Use token</button> <button type="button" id="forget">Forget token</button></form>
<p id="stats"></p>
<form id="filters">User <input id="user" size="12"> Status <select id="status"><option value="">any</option>
 <option>queued</option><option>running</option><option>succeeded</option><option>failed</option>
 <option>cancelled</option></select> <button>Filter</button>
 <button type="button" id="prev">&larr;</button> <span id="page"></span>
 <button type="button" id="next">&rarr;</button></form>
<p id="error"></p>
<table><thead><tr><th>created</th><th>user</th><th>endpoint</th><th>status</th><th>progress</th>
<th>attempts</th><th>error</th><th>id</th></tr></thead><tbody id="jobs"></tbody></table>
<script>
"use strict";
const LIMIT = 50;
let offset = 0;
const $ = (id) => document.getElementById(id);

async function api(path) {
  const token = sessionStorage.getItem("fitexplain-admin-token");
  if (!token) throw new Error("Paste an admin token first.");
  const response = await fetch(path, {headers: {Authorization: "Bearer " + token}});
  const body = await response.json();
  if (!response.ok) throw new Error(response.status + ": " + body.detail);
  return body;
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;  // never innerHTML: job fields come from users
  if (className) td.className = className;
}

async function refresh() {
  $("error").textContent = "";
  try {
    const stats = await api("/admin/stats");
    $("stats").replaceChildren(...Object.entries(stats.jobs_by_status).map(([status, count]) => {
      const span = document.createElement("span");
      span.textContent = status + ": " + count;
      return span;
    }));
    const query = new URLSearchParams({limit: LIMIT, offset: offset});
    if ($("user").value) query.set("user", $("user").value);
    if ($("status").value) query.set("status", $("status").value);
    const page = await api("/admin/jobs?" + query);
    const rows = $("jobs");
    rows.replaceChildren();
    for (const job of page.items) {
      const row = rows.insertRow();
      cell(row, new Date(job.created_at).toLocaleString());
      cell(row, job.user);
      cell(row, job.endpoint);
      cell(row, job.status, job.status);
      cell(row, Math.round(job.progress * 100) + "% " + job.progress_message);
      cell(row, job.attempts);
      cell(row, job.error ? job.error.code + ": " + job.error.message : "");
      cell(row, job.id);
    }
    const last = offset + page.items.length;
    $("page").textContent = page.total ? (offset + 1) + "-" + last + " of " + page.total : "none";
    $("prev").disabled = offset === 0;
    $("next").disabled = offset + LIMIT >= page.total;
  } catch (error) {
    $("error").textContent = error.message;
  }
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem("fitexplain-admin-token", $("token").value.trim());
  $("token").value = "";
  refresh();
});
$("forget").addEventListener("click", () => { sessionStorage.removeItem("fitexplain-admin-token"); });
$("filters").addEventListener("submit", (event) => { event.preventDefault(); offset = 0; refresh(); });
$("prev").addEventListener("click", () => { offset = Math.max(0, offset - LIMIT); refresh(); });
$("next").addEventListener("click", () => { offset += LIMIT; refresh(); });
if (sessionStorage.getItem("fitexplain-admin-token")) refresh();
</script>
</body></html>
"""
