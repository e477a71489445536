"""The four techtonique-compatible endpoints: validate, store the upload, write the job, enqueue its id.

Nothing is fitted here. `wait=N` (and the /techtonique mount) only waits for the worker's result.

The route functions are built per endpoint at import time; this module does not use
`from __future__ import annotations`, because FastAPI must see their parameter models as classes.
"""

from collections.abc import Callable, Coroutine
from contextlib import nullcontext
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, Request, Response, UploadFile, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from api import errors
from api.deps import CurrentUser, SettingsDep
from api.endpoint_params import (
    CommonParams,
    GbdtClassificationParams,
    GbdtRegressionParams,
    MlClassificationParams,
    MlRegressionParams,
)
from api.serialize import job_public, result_response, table_json_response
from api.uploads import files as upload_files
from api.uploads import rejections
from api.uploads.auth_first import AuthenticateBeforeBodyRoute
from api.uploads.background import CheckedBackground, checked_background, refuse_both
from api.uploads.files import ReceivedUpload
from api.uploads.stream import ReceivedFile, is_multipart, receive_form
from api.waiting import Finished, job_waiter
from shared.db import session_scope
from shared.dispatch.marks import dispatch_marks
from shared.dispatch.publish import publish_job
from shared.dispatch.routing import queue_for_cost
from shared.limits import check_rejected_uploads, enforce_submission_limits, reserve_submission
from shared.ml.cost import check_budget, estimate_cost, shape_of
from shared.ml.distributed import check_placement, cluster_refusal
from shared.ml.explain.methods import check_explanation_limits
from shared.ml.ingest.dataset import load_checks, roles_of
from shared.ml.ingest.upload import Ingested
from shared.ml.model.schema import features_of
from shared.ml.spec import JobSpec, Limits
from shared.settings import Settings, get_settings
from shared.store.backgrounds import keep_background
from shared.store.jobstore import create_job
from shared.store.uploads import store_upload
from shared.tables import Job, JobStatus, User, new_id
from shared.webhooks.delivery import check_url

EARLY_LIMITS_MIN_BYTES = 64 * 1024
"""Bodies declared smaller than this skip the early limit check: reading and converting one costs about
what the check does (a query), and the binding check refuses it all the same before anything is kept."""


class SubmitRoute(AuthenticateBeforeBodyRoute):
    """The token and the user's limits (rate, unfinished jobs, a used-up quota) are checked before an
    upload of 64 KiB or more (or of unknown size) is read: a refused upload costs a header, not its body.
    A smaller one is refused by the binding check (`reserve_submission`), after its data was checked."""

    def before_body(self, session: Session, user: User, declared_bytes: int | None) -> None:
        settings = get_settings()
        check_rejected_uploads(session, user.id, settings)
        if declared_bytes is None or declared_bytes >= EARLY_LIMITS_MIN_BYTES:
            enforce_submission_limits(session, user.id, settings)

    async def answer(
        self, request: Request, handler: Callable[[Request], Coroutine[Any, Any, Response]]
    ) -> Response:
        """The multipart body is streamed into the request's workspace (`api.uploads.stream`), removed
        when the answer is ready. The conversion thread is done with it by then: a thread started by
        run_in_threadpool is waited for, even when the request is cancelled. A refused upload is charged
        to its user's rejected-upload budget (`api.uploads.rejections`)."""
        try:
            if not is_multipart(request):
                return await handler(request)
            with upload_files.workspace(get_settings().home) as directory:
                async with receive_form(request, directory):
                    return await handler(request)
        except Exception as error:
            if rejections.refused_upload(error):
                await run_in_threadpool(
                    rejections.charge, request.state.user.id, rejections.cost_of(request, error)
                )
            raise


TECHTONIQUE_PREFIX = "/techtonique"

router = APIRouter(tags=["submit"], route_class=SubmitRoute)
compat_router = APIRouter(
    prefix=TECHTONIQUE_PREFIX, tags=["techtonique compatibility"], route_class=SubmitRoute
)

UploadDep = Annotated[
    UploadFile,
    File(
        description="the data: feature columns, `target`, optional `training_index`; as CSV (UTF-8), "
        "gzip-compressed CSV, Parquet or Arrow IPC (file or stream), told apart by their first bytes, "
        "the part's file name or its content type"
    ),
]

BackgroundUploadDep = Annotated[
    UploadFile | None,
    File(
        alias="background",
        description="optional: SHAP's background rows, for the explainers that take one: the model's "
        "feature columns (others are ignored), at most FITEXPLAIN_MAX_BACKGROUND_ROWS rows, in any format "
        "`file` takes; instead of `background=sample:N`",
    ),
]

USER_ERROR_STATUS = {
    "internal_error": 500,
    "worker_lost": 503,
    "cluster_unavailable": 503,
    "time_limit": 504,
}

SUBMIT_ERRORS = {
    400: "The multipart body could not be parsed (`bad_request`).",
    401: "Missing or invalid token (`unauthorized`).",
    413: "Upload larger than FITEXPLAIN_MAX_UPLOAD_BYTES (`upload_too_large`), or keeping it would exceed "
    "the user's storage quota (FITEXPLAIN_MAX_STORAGE_BYTES_PER_USER; `storage_quota_exceeded`).",
    422: "Bad parameter (`invalid_parameter`) or unusable data (the message names the column or "
    "parameter, and the accepted formats for an unknown one), a background over "
    "FITEXPLAIN_MAX_BACKGROUND_ROWS (`too_many_background_rows`) or off the model's features "
    "(`schema_mismatch`, `parameter` background), or a job estimated above the per-job "
    "budget (FITEXPLAIN_MAX_JOB_SECONDS; code `over_budget`) or the worker memory bound "
    "(FITEXPLAIN_WORKER_MAX_MEMORY_MB; code `over_memory`) that no Dask cluster takes "
    "(FITEXPLAIN_DASK_SCHEDULER).",
    429: "Too many submissions, running jobs or refused uploads for this user (`rate_limited`).",
}
SUBMITTED: dict[int | str, dict[str, Any]] = {
    202: {"description": "Job accepted; poll the Location header (`/jobs/{id}`)."},
    200: {"description": "With `wait`: the result JSON, when the job finished in time."},
}
SUBMIT_RESPONSES: dict[int | str, dict[str, Any]] = {**SUBMITTED, **errors.documented(SUBMIT_ERRORS)}
TECHTONIQUE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **SUBMITTED,
    **errors.documented(SUBMIT_ERRORS, errors.TechtoniqueErrorBody),
}


Accept = Callable[..., tuple[Job, datetime | None]]
"""Validates and stores a job: (endpoint, params, received upload, user id, settings, job id, background=
the received background part or None) -> (the job, when it was published)."""


async def submit(
    endpoint: str,
    params: Any,
    file: UploadFile,
    user_id: int,
    settings: Settings,
    request: Request,
    wait: float | None,
    *,
    techtonique: bool = False,
    accept: Accept | None = None,
    background: UploadFile | None = None,
) -> Response:
    """Accept the job (`accept`: a fit's `_accept` by default), then answer 202, or wait for its result."""
    assert isinstance(file, ReceivedFile)  # a file part is only found in a multipart body: SubmitRoute's
    assert background is None or isinstance(background, ReceivedFile)
    sent_background = background.received() if background is not None else None
    job_id = new_id()
    waiter = job_waiter(request.app)
    # A wait is registered before the job can finish: its notification cannot be missed, so the waiter
    # need not read the row first (a read racing the worker's claim on a trivial job).
    with waiter.expecting(job_id) if wait else nullcontext() as expected:
        accepting = partial(
            accept or _accept,
            endpoint,
            params,
            file.received(),
            user_id,
            settings,
            job_id,
            background=sent_background,
        )
        job, published = await run_in_threadpool(accepting)
        accepted = job_public(job)  # as accepted: queued (a worker may claim it as soon as it is published)
        if published is not None:
            dispatch_marks(request.app).add(job.id, published)
        if wait:
            finished = await waiter.wait(job.id, wait, expected=expected)
            if finished is not None:
                return finished_response(request, finished, techtonique=techtonique)
            accepted = job_public(await run_in_threadpool(_load_job, job.id))  # still running: its progress
    return JSONResponse(
        accepted.model_dump(mode="json"),
        status_code=status.HTTP_202_ACCEPTED,
        headers={"Location": f"/jobs/{job_id}"},
    )


def _accept(
    endpoint: str,
    params: CommonParams,
    received: ReceivedUpload,
    user_id: int,
    settings: Settings,
    job_id: str,
    background: ReceivedUpload | None = None,
) -> tuple[Job, datetime | None]:
    """Validate and store the job, then publish its message once it is committed (None: the broker is
    down, the sweep will)."""
    spec = params.to_spec()  # validated once, against the ML core's own declarations
    if params.webhook_url:
        check_url(params.webhook_url, allow_private=settings.webhook_allow_private)
    limits = settings.limits()
    refuse_both(spec.background, background)
    spec.background.check(limits)  # sample:N over max_background_rows: 422 too_many_background_rows
    with upload_files.converted(received, ingest_limits(spec, limits, settings)) as ingested:  # DataError
        dataset = load_checks(ingested.labels, spec.task, spec.seed, limits, roles_of(spec))  # DataError: 422
    kept_background = None
    if background is not None:  # after the file's conversion slot is free: one slot per request at a time
        kept_background = checked_background(
            background,
            features_of(dataset),
            limits,
            target=spec.target,
            handles_missing=spec.model.handles_missing,
        )
        spec = replace(spec, background=kept_background.asked)
    check_explanation_limits(spec, dataset, limits)  # refuse now what the worker would refuse later
    shape = shape_of(dataset)
    # one worker, or the Dask cluster when one is configured; else LimitExceeded -> 422 over_memory
    check_placement(
        shape,
        spec,
        settings.worker_max_memory_mb,
        cluster=bool(settings.dask_scheduler),
        categorical=bool(dataset.categories),
    )
    cost = estimate_cost(spec, shape, spec.background.row_bound(limits))
    check_budget(cost, settings.max_job_seconds)  # raises LimitExceeded -> 422
    return store_and_publish(
        job_id,
        user_id,
        endpoint,
        params.stored(),
        spec.to_json(),
        received,
        ingested,
        cost.total,
        settings,
        background=kept_background,
    )


def store_and_publish(
    job_id: str,
    user_id: int,
    endpoint: str,
    params: dict[str, Any],
    spec: dict[str, Any],
    received: ReceivedUpload,
    ingested: Ingested,
    estimated_seconds: float,
    settings: Settings,
    *,
    background: CheckedBackground | None = None,
) -> tuple[Job, datetime | None]:
    """Reserve the submission, keep the upload (and the background sent with it), write the job row and
    publish it (a fit's or a predict's)."""
    with session_scope() as session:
        # locks the user's row, so the limits and the quota hold until the job below is committed
        reserve_submission(session, user_id, settings, upload=(received.digest, ingested.size_bytes))
        store_upload_of(session, ingested, received.digest)
        job = create_job(
            session,
            job_id=job_id,
            user_id=user_id,
            endpoint=endpoint,
            params=params,
            spec=spec,
            dataset=received.digest,
            estimated_seconds=round(estimated_seconds, 3),
            queue=queue_for_cost(estimated_seconds, settings),
            data_filename=file_name(received.filename),
        )
        if background is not None:
            asked = background.asked
            assert asked.sha256 is not None and asked.rows is not None
            keep_background(session, job.id, asked.sha256, asked.rows, background.parquet)
    return job, publish_job(job.id, job.queue)


def ingest_limits(spec: JobSpec, limits: Limits, settings: Settings) -> Limits:
    """The limits an upload is read under: a job the Dask cluster would take is not refused for one
    worker's memory while it is read (`check_placement` decides once its shape is known)."""
    if settings.dask_scheduler and cluster_refusal(spec) is None:
        return replace(limits, worker_max_memory_mb=UNBOUNDED_MEMORY_MB)
    return limits


UNBOUNDED_MEMORY_MB = 2**62


def file_name(sent: str) -> str | None:
    """The upload's file name as a list of jobs shows it: its last path component (some clients send a
    path), at most 255 characters; None when the part had none."""
    name = sent.replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name[:255] or None


def store_upload_of(session: Session, ingested: Ingested, digest: str) -> None:
    """Keep the canonical Parquet file under the upload's sha256 (of the bytes as sent)."""
    store_upload(session, ingested.path, digest, ingested.n_rows, ingested.n_columns)


def _load_job(job_id: str) -> Job:
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def finished_response(request: Request, finished: Finished, *, techtonique: bool) -> Response:
    """200 with the result JSON itself, or the job's error in the error body with the job's code
    (`job_cancelled` for a cancelled job); on the /techtonique mount, `detail` is what techtonique's
    scripts read, beside the job's `code` (null for a cancelled job) and `job_id`."""
    job, body = finished
    if isinstance(body, bytes):
        return result_response(request, body)
    if body is not None:  # a result kept only as Parquet
        return table_json_response(body)
    assert job is not None  # a job comes without its row only with its result
    status_code = USER_ERROR_STATUS.get(job.error_code or "", 422)
    if job.status == JobStatus.cancelled:
        status_code = 409
    detail = job.error_message or f"The job was {job.status}."
    if techtonique:
        techtonique_body = {"detail": detail, "code": job.error_code, "job_id": job.id}
        return JSONResponse(techtonique_body, status_code=status_code)
    code = job.error_code or ("job_cancelled" if job.status == JobStatus.cancelled else "internal_error")
    return errors.error_response(status_code, code, detail, job_id=job.id)


def _route(endpoint: str, params_model: type[CommonParams], *, compat: bool) -> Callable[..., Any]:
    """The route function for one endpoint; the /techtonique mount waits by default, as techtonique.net."""

    async def route(
        request: Request,
        params: Annotated[CommonParams, Query()],
        file: UploadDep,
        user: CurrentUser,
        settings: SettingsDep,
        background_file: BackgroundUploadDep = None,
    ) -> Response:
        wait = params.wait
        if compat and wait is None:
            wait = settings.compat_wait
        return await submit(
            endpoint,
            params,
            file,
            user.id,
            settings,
            request,
            wait,
            techtonique=compat,
            background=background_file,
        )

    # FastAPI reads the query parameters from this endpoint's own model: a class known only here.
    route.__annotations__["params"] = Annotated[params_model, Query()]
    return route


def _register(endpoint: str, params_model: type[CommonParams], summary: str) -> None:
    submit_route = _route(endpoint, params_model, compat=False)
    compat_route = _route(endpoint, params_model, compat=True)

    router.add_api_route(
        f"/{endpoint}",
        submit_route,
        methods=["POST"],
        summary=summary,
        status_code=202,
        responses=SUBMIT_RESPONSES,
        name=endpoint,
    )
    compat_router.add_api_route(
        f"/{endpoint}",
        compat_route,
        methods=["POST"],
        status_code=200,
        responses=TECHTONIQUE_RESPONSES,
        summary=f"{summary} (waits for the result, as techtonique.net does)",
        name=f"techtonique_{endpoint}",
    )


_register(
    "mlclassification", MlClassificationParams, "Classify with a scikit-learn model (nnetsauce-wrapped)"
)
_register("mlregression", MlRegressionParams, "Regress with a scikit-learn model (nnetsauce-wrapped)")
_register("gbdtclassification", GbdtClassificationParams, "Classify with gradient-boosted trees")
_register("gbdtregression", GbdtRegressionParams, "Regress with gradient-boosted trees")
