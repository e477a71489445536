"""How jobs look on the wire (JobPublic) and how stored results are sent back."""

from __future__ import annotations

import gzip
from datetime import datetime
from typing import Any

from fastapi import Request, Response
from pydantic import BaseModel, Field

from shared.tables import Job


class JobError(BaseModel):
    code: str
    message: str


class JobPublic(BaseModel):
    id: str
    endpoint: str
    status: str
    params: dict[str, Any]
    progress: float
    progress_message: str
    attempts: int
    estimated_seconds: float | None = Field(
        None, description="estimated worker-seconds of the job (null for jobs submitted before estimates)"
    )
    queue: str = Field("small", description='"small" or "large": the queue its estimated cost routed it to')
    error: JobError | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    links: dict[str, str]


# Pages start at most this far in: far past any real list, and well inside the database's 64-bit OFFSET
# (a larger number used to reach the driver and fail with a 500).
MAX_OFFSET = 1_000_000_000


class JobPage(BaseModel):
    items: list[JobPublic]
    total: int
    limit: int
    offset: int


def job_public(job: Job) -> JobPublic:
    error = JobError(code=job.error_code, message=job.error_message or "") if job.error_code else None
    return JobPublic(
        id=job.id,
        endpoint=job.endpoint,
        status=job.status,
        params=job.params,
        progress=job.progress,
        progress_message=job.progress_message,
        attempts=job.attempts,
        estimated_seconds=job.estimated_seconds,
        queue=job.queue,
        error=error,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        links={"self": f"/jobs/{job.id}", "result": f"/jobs/{job.id}/result"},
    )


def result_response(request: Request, body_gzip: bytes, status_code: int = 200) -> Response:
    """Send the stored gzip body as is to clients that accept gzip, decompressed to the others."""
    headers = {"Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(body_gzip, status_code=status_code, media_type="application/json", headers=headers)
    return Response(
        gzip.decompress(body_gzip), status_code=status_code, media_type="application/json", headers=headers
    )
