"""A user's jobs: status, result, list, cancel or delete. Another user's job answers 404, never 403.

Every `{job_id}` is a full id or a unique prefix of at least six characters among the caller's own jobs
(api/owned_jobs.py); the answers name the job by its full id."""

from __future__ import annotations

from typing import IO, Annotated, Any, Literal

import orjson
from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api import errors
from api.deps import CurrentUser, SessionDep
from api.endpoint_params import MAX_WAIT_SECONDS
from api.negotiation import ResultFormatName, choose_format
from api.owned_jobs import BY_PREFIX, owned_job
from api.serialize import (
    MAX_OFFSET,
    JobPage,
    JobPublic,
    binary_result_response,
    job_public,
    result_response,
    stored_binary_response,
    table_arrow_response,
    table_binary_response,
    table_json_response,
)
from api.waiting import job_waiter
from shared.db import read_scope
from shared.ml.ingest.dataset import with_test_features
from shared.ml.model.predict.spec import is_predict
from shared.ml.spec import JobSpec
from shared.results.formats import FORMATS, ResultFormat, load_stored
from shared.store.jobstore import cancel, delete_job, json_stored, open_result, open_result_parquet
from shared.store.uploads import upload_path
from shared.tables import FINISHED, Job, JobStatus, User

router = APIRouter(
    prefix="/jobs", tags=["jobs"], responses=errors.documented({401: "Missing or invalid token."})
)


@router.get("", response_model=JobPage)
def list_jobs(
    session: SessionDep,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    status_filter: Annotated[JobStatus | None, Query(alias="status")] = None,
) -> JobPage:
    """The caller's jobs, newest first."""
    query = select(Job).where(Job.user_id == user.id)
    if status_filter is not None:
        query = query.where(Job.status == status_filter)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    jobs = session.scalars(query.order_by(Job.created_at.desc(), Job.id).limit(limit).offset(offset)).all()
    return JobPage(items=[job_public(j) for j in jobs], total=total, limit=limit, offset=offset)


@router.get("/{job_id}", response_model=JobPublic, responses=BY_PREFIX)
async def get_job(
    job_id: str,
    request: Request,
    user: CurrentUser,
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=MAX_WAIT_SECONDS,
            description="seconds to wait for the job to finish before answering (a long poll: the answer "
            "comes as soon as it finishes, woken by a notification); 0 answers at once",
        ),
    ] = 0,
) -> JobPublic:
    job = await run_in_threadpool(_owned_public, job_id, user)
    if wait and job.status not in FINISHED:  # JobStatus is a StrEnum: equal to its names
        finished = await job_waiter(request.app).wait(job.id, wait, with_body=False)
        if finished is not None:
            found, _ = finished
            assert found is not None  # waited for without its body: the job's row is read
            return job_public(found)
        job = await run_in_threadpool(_owned_public, job.id, user)  # still unfinished: its progress now
    return job


def _owned_public(job_id: str, user: User) -> JobPublic:
    with read_scope() as session:
        return job_public(owned_job(session, job_id, user))


RESULT_CONTENT: dict[str, dict[str, Any]] = {
    "application/json": {"schema": {"type": "object"}},
    **{
        media: {"schema": {"type": "string", "format": "binary"}}
        for fmt in FORMATS.values()
        if fmt.name != "json"
        for media in fmt.media_types
    },
}


@router.get(
    "/{job_id}/result",
    responses={
        **BY_PREFIX,
        200: {
            "description": "The result: JSON (techtonique's shape) by default; Arrow IPC (stream or file), "
            "Parquet or NPZ when `format=` or the Accept header asks (docs/api.md, Result formats), with "
            '`Content-Disposition: attachment; filename="{job_id}.{extension}"`. The binary forms hold '
            "the same numbers: one row per test row (test_rows, test_ids, y_true, y_pred, proba_<class>, "
            "pi_lower/pi_upper, base_value, shap_<feature>[_<class>], and the test rows' feature values "
            "as uploaded, X_test_<feature>) and the rest of the JSON in the schema metadata (key "
            "`fitexplain`); NPZ holds each array with its true shape and `metadata`. The JSON holds the "
            "feature values (`X_test`) with `include=X_test`.",
            "content": RESULT_CONTENT,
        },
        **errors.documented(
            {
                406: "The Accept header matches none of the result's media types.",
                409: "The job has not succeeded (yet): the detail says its status. Or the prefix is "
                "ambiguous (`ambiguous_id`).",
            }
        ),
    },
)
def get_result(
    job_id: str,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    result_format: Annotated[
        ResultFormatName | None,
        Query(
            alias="format",
            description="json, arrow (IPC stream), arrow-file (IPC file, Feather v2), parquet or npz; "
            "wins over the Accept header. JSON by default.",
        ),
    ] = None,
    include: Annotated[
        Literal["X_test"] | None,
        Query(
            description="X_test: the JSON also holds the test rows' feature values as uploaded "
            "(`X_test`: feature -> one value per test row, categories as text; the binary forms always do)"
        ),
    ] = None,
) -> Response:
    job = owned_job(session, job_id, user)
    job_id = job.id  # the full id, when a prefix named it
    chosen = choose_format(result_format, request.headers.get("accept"))
    if job.status != JobStatus.succeeded:
        message = f"Job {job_id} is {job.status}"
        if job.error_code:
            message += f" ({job.error_code}: {job.error_message})"
        elif job.status not in FINISHED:
            message += f"; poll /jobs/{job_id} until it has succeeded"
        raise HTTPException(status.HTTP_409_CONFLICT, detail=message + ".")
    if is_predict(job.spec) and (table := predict_table_response(session, job_id, chosen)) is not None:
        return table
    if chosen.name == "json" and include is None:  # streamed from the blob store
        return result_response(request, stored_result(session, job_id), vary="Accept, Accept-Encoding")
    if chosen.name == "parquet" and (parquet := open_result_parquet(session, job_id)) is not None:
        return stored_binary_response(parquet, chosen, job_id)  # stored by the worker: no conversion
    with stored_result(session, job_id) as stream:
        body = stream.read()
    source = upload_path(session, job.dataset_sha256)

    def add_test_features(result: dict[str, Any]) -> dict[str, Any]:
        if is_predict(job.spec):  # a predict job's rows are its upload's: no test rows to add
            return result
        return with_test_features(result, source, JobSpec.from_json(job.spec))

    if chosen.name == "json":
        with_features = add_test_features(load_stored(body))
        return Response(
            orjson.dumps(with_features), media_type="application/json", headers={"Vary": "Accept"}
        )
    return binary_result_response(body, chosen, job_id, add_test_features)


def predict_table_response(session: Session, job_id: str, chosen: ResultFormat) -> Response | None:
    """A predict job's result from its stored Parquet form (`shared.results.predict_table`), which the
    worker wrote batch by batch: Parquet as stored, Arrow converted and JSON (when the result is kept only
    as Parquet) written from it as they are sent, NPZ converted whole. None when the result has its JSON
    and the form asked for is JSON, or when it has no Parquet form (then it is sent as any result is)."""
    kept_json = json_stored(session, job_id)
    if kept_json and chosen.name == "json":
        return None
    parquet = open_result_parquet(session, job_id)
    if parquet is None:
        if kept_json is False:  # deleted meanwhile
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"The result of job {job_id} was deleted.")
        return None
    if chosen.name == "parquet":
        return stored_binary_response(parquet, chosen, job_id)
    if chosen.name == "json":
        return table_json_response(parquet)
    if chosen.name in ("arrow", "arrow-file"):
        return table_arrow_response(parquet, chosen, job_id)
    if kept_json:  # NPZ: from the stored JSON, as any result's
        parquet.close()
        return None
    return table_binary_response(parquet, chosen, job_id)


def stored_result(session: Session, job_id: str) -> IO[bytes]:
    """The stored gzip JSON of a succeeded job, open for reading (the one place this route reads it), or
    404 if it was deleted."""
    stream = open_result(session, job_id)
    if stream is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"The result of job {job_id} was deleted.")
    return stream


@router.post(
    "/{job_id}/cancel",
    response_model=JobPublic,
    responses={
        **BY_PREFIX,
        200: {"description": "The job, cancelled (also when it already was)"},
        **errors.documented(
            {
                409: "The job already succeeded or failed (`job_finished`, with its `status`); it is kept. "
                "Or the prefix is ambiguous (`ambiguous_id`)."
            }
        ),
    },
)
def cancel_job(job_id: str, session: SessionDep, user: CurrentUser) -> JobPublic:
    """Cancels a queued or running job: a running job's computation is stopped by its worker within a
    second or two. Cancelling a cancelled job answers it again; a job that succeeded or failed is refused
    and kept."""
    job = owned_job(session, job_id, user)
    if job.status not in FINISHED and cancel(session, job.id):
        session.commit()  # with the job's webhook outbox row
    session.refresh(job)  # also when it finished between the read and the cancel
    if job.status in (JobStatus.succeeded, JobStatus.failed):
        raise errors.CodedHTTPException(
            status.HTTP_409_CONFLICT,
            "job_finished",
            f"Job {job.id} already {job.status}: only queued or running jobs can be cancelled "
            f"(DELETE /jobs/{job.id} deletes it).",
            status=job.status,
            job_id=job.id,
        )
    return job_public(job)


@router.delete(
    "/{job_id}",
    responses={
        **BY_PREFIX,
        200: {"description": "Cancelled: the job as it now stands"},
        204: {},
        **errors.documented(
            {
                409: "Cancelled, and its worker is still stopping it: retry in a few seconds. Or the prefix "
                "is ambiguous (`ambiguous_id`)."
            }
        ),
    },
)
def cancel_or_delete_job(job_id: str, session: SessionDep, user: CurrentUser) -> Response:
    """Deletes a finished job with its result and upload; a job that has not finished is cancelled
    instead (as `POST /jobs/{id}/cancel` does) and answered, and can be deleted once it has stopped."""
    job = owned_job(session, job_id, user)
    if job.stopping:  # deleting it now would free the user's running-jobs place before the worker is free
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail="The job was cancelled and its worker is still stopping it: delete it in a few seconds.",
        )
    if job.status in FINISHED:
        delete_job(session, job.id)
        session.commit()
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    if cancel(session, job.id):
        session.commit()  # with the job's webhook outbox row
    session.refresh(job)
    return Response(job_public(job).model_dump_json(), media_type="application/json")
