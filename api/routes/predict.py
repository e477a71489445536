"""`POST /jobs/{id}/predict`: score (and explain) new rows with a succeeded job's kept model.

The upload takes the fit's streaming path and limits (`SubmitRoute`); the new rows are checked against
the model's training schema from its card (every missing column and wrong dtype at once, unseen
categories with `strict`) before anything is stored; the job is a `predict` job, queued, fair-shared,
estimated and budgeted as a fit. The API never loads the model: the card says all the checks need.

This module does not use `from __future__ import annotations`: FastAPI must see its parameter model.
"""

from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from sqlalchemy.orm import Session

from api import errors
from api.deps import CurrentUser, SettingsDep
from api.model_files import card_row
from api.owned_jobs import BY_PREFIX, owned_job
from api.predict_params import PredictParams
from api.routes.submit import (
    SUBMIT_ERRORS,
    SUBMITTED,
    BackgroundUploadDep,
    SubmitRoute,
    UploadDep,
    store_and_publish,
    submit,
)
from api.uploads import files as upload_files
from api.uploads.background import checked_background, refuse_both
from api.uploads.files import ReceivedUpload
from shared.db import read_scope
from shared.ml.cost import DataShape, check_budget, estimate_predict_cost
from shared.ml.errors import DataError, ParameterError
from shared.ml.model.predict.checks import check_schema, refuse_unseen, unseen_categories
from shared.ml.model.predict.scoring import check_predict_limits
from shared.ml.model.predict.spec import PredictSpec, is_predict
from shared.ml.spec import JobSpec
from shared.settings import Settings
from shared.tables import Job, JobModel, Upload, User
from shared.webhooks.delivery import check_url

ENDPOINT = "predict"

router = APIRouter(prefix="/jobs", tags=["predict"], route_class=SubmitRoute)

PREDICT_ERRORS = {
    **SUBMIT_ERRORS,
    404: "No such job for this user.",
    409: "The job failed (`job_failed`), was cancelled (`job_cancelled`), has not finished "
    "(`job_not_finished`) or keeps no model (`model_not_kept`: over FITEXPLAIN_MAX_MODEL_BYTES, fitted on "
    "the Dask cluster, or a predict job).",
    422: "The file does not match the model's training columns (`schema_mismatch`: `problems` names every "
    "missing column, wrong dtype and unfillable missing value at once), holds categories never seen in "
    "training with strict=true (`unseen_category`), has no rows, or a parameter does not suit the model; "
    "or the SHAP rows pass FITEXPLAIN_MAX_PREDICT_EXPLAIN_ROWS, or the job the per-job budget; or the "
    "background (`parameter` background) is off the model's features (`schema_mismatch`) or over "
    "FITEXPLAIN_MAX_BACKGROUND_ROWS (`too_many_background_rows`).",
}


class KeptSource:
    """What the submit checks need of the fitted job: its id, spec, card and model blob."""

    def __init__(self, job: Job, kept: JobModel, n_rows: int) -> None:
        self.job_id = job.id
        self.spec = JobSpec.from_json(job.spec)
        self.card: dict[str, Any] = dict(kept.card)
        self.model_sha256 = str(kept.model_sha256)
        self.n_rows = n_rows  # the fit's upload's rows: its training rows' bound, for the cost estimate


def kept_source(session: Session, job_ref: str, user: User) -> KeptSource:
    """The caller's succeeded job named by `job_ref` with its kept model; 404, or 409 with the model
    card's own codes (`job_failed`, `job_cancelled`, `job_not_finished`, `model_not_kept`)."""
    job = owned_job(session, job_ref, user)
    if is_predict(job.spec):
        raise errors.CodedHTTPException(
            status.HTTP_409_CONFLICT,
            "model_not_kept",
            f"Job {job.id} is a predict job: predict with the job whose model it used, "
            f"{job.spec.get('source_job')}.",
            notes=None,
        )
    card = card_row(session, job)
    if card.model_sha256 is None:
        notes = card.card.get("notes")
        raise errors.CodedHTTPException(
            status.HTTP_409_CONFLICT,
            "model_not_kept",
            f"Job {job.id}'s model was not kept: {notes}",
            notes=notes,
        )
    upload = session.get(Upload, job.dataset_sha256) if job.dataset_sha256 else None
    return KeptSource(job, card, upload.n_rows if upload is not None else 0)


@router.post(
    "/{job_id}/predict",
    summary="Score and explain new rows with a succeeded job's model",
    status_code=202,
    responses={**SUBMITTED, **BY_PREFIX, **errors.documented(PREDICT_ERRORS)},
    name="predict",
)
async def predict(
    job_id: str,
    request: Request,
    params: Annotated[PredictParams, Query()],
    file: UploadDep,
    user: CurrentUser,
    settings: SettingsDep,
    background_file: BackgroundUploadDep = None,
) -> Response:
    accept = partial(_accept, job_id, user)
    return await submit(
        ENDPOINT,
        params,
        file,
        user.id,
        settings,
        request,
        params.wait,
        accept=accept,
        background=background_file,
    )


def _accept(
    source_ref: str,
    user: User,
    endpoint: str,
    params: PredictParams,
    received: ReceivedUpload,
    user_id: int,
    settings: Settings,
    job_id: str,
    background: ReceivedUpload | None = None,
) -> tuple[Job, datetime | None]:
    """Check the new rows (and a background sent with them) against the model's card, then store the
    predict job and publish it."""
    options = params.options()
    if "top_n" in params.model_fields_set and not options.explains:
        raise ParameterError(
            "bad_parameter",
            "top_n picks the reasons SHAP gives for each row: it needs interpretability=shap.",
        )
    if params.webhook_url:
        check_url(params.webhook_url, allow_private=settings.webhook_allow_private)
    limits = settings.limits()
    refuse_both(options.background, background)
    options.background.check(limits)  # sample:N over max_background_rows: 422 too_many_background_rows
    with read_scope() as session:
        source = kept_source(session, source_ref, user)
    fit = source.spec
    options.check(fit.task, fitted_pi=fit.return_pi, fitted_level=fit.level)
    features = source.card["features"]
    with upload_files.converted(received, limits) as ingested:  # DataError
        labels = ingested.labels
        if labels.n_rows == 0:
            raise DataError("no_rows", "The file has a header but no data rows: there is nothing to score.")
        checked = check_schema(
            features,
            labels.facts,
            target=fit.target,
            id_column=options.id_column,
            handles_missing=fit.model.handles_missing,
        )
        if options.strict:
            refuse_unseen(unseen_categories(checked.features, labels.column))
        n_classes = len(source.card["target"].get("classes") or []) or None
        if options.explains:
            check_predict_limits(labels.n_rows, len(features), n_classes or 1, limits)
        shape = DataShape(
            n_train=max(source.n_rows, 1),
            n_test=labels.n_rows,
            n_features=len(features),
            n_classes=n_classes,
            n_categorical=sum(1 for feature in checked.features if feature.categories is not None),
        )
    kept_background = None
    if background is not None:  # after the file's conversion slot is free: one slot per request at a time
        kept_background = checked_background(
            background, features, limits, target=fit.target, handles_missing=fit.model.handles_missing
        )
        options = replace(options, background=kept_background.asked)
    cost = estimate_predict_cost(
        replace(fit, background=options.background),
        shape,
        explain=options.explains,
        background_rows=options.background.row_bound(limits),
    )
    check_budget(cost, settings.max_job_seconds)
    spec = PredictSpec(
        source_job=source.job_id,
        model_sha256=source.model_sha256,
        task=fit.task,
        options=options,
        extra_columns=tuple(checked.extra_columns),
        model_name=_model_name(fit),
    )
    return store_and_publish(
        job_id,
        user_id,
        ENDPOINT,
        {"job": source.job_id, **params.stored()},
        spec.to_json(),
        received,
        ingested,
        cost.total,
        settings,
        background=kept_background,
    )


def _model_name(spec: JobSpec) -> str | None:
    return spec.model.base_model if spec.model.family == "ml" else spec.model.model_type
