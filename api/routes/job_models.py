"""A succeeded job's kept model: its card (`GET /jobs/{id}/model`) and its download files
(`GET /jobs/{id}/model/download?format=`). The files were written by the worker that fitted the model
(worker/keep_model.py): this process only streams blobs, after checking their sha256, and never loads a
model. Another user's job answers 404, never 403."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from api import errors
from api.deps import CurrentUser, SessionDep
from api.owned_jobs import BY_PREFIX, owned_job
from shared.blobs.store import current_store
from shared.ml.model.export import FORMATS
from shared.store import kept_models
from shared.tables import Job, JobModel, JobStatus

router = APIRouter(
    prefix="/jobs", tags=["models"], responses=errors.documented({401: "Missing or invalid token."})
)

PRIVATE_CARD_KEYS = ("format_refusals",)  # kept with the card for the API's answers, not shown


class EstimatorPublic(BaseModel):
    name: str
    library: str
    hyperparameters: dict[str, Any]


class FeaturePublic(BaseModel):
    name: str
    dtype: str = Field(description="float64, or category")
    categories: list[str] | None = Field(None, description="a category's code is its position here")


class ModelCardPublic(BaseModel):
    """What a succeeded job's model is, how it was fitted and scored, and how to take it home."""

    job_id: str
    endpoint: str
    params: dict[str, Any]
    estimator: EstimatorPublic
    libraries: dict[str, str] = Field(description="{name: version} of the libraries that fitted it")
    features: list[dict[str, Any]] = Field(
        description="[{name, dtype, categories?}] in training order: the columns a scorer needs"
    )
    target: dict[str, Any] = Field(description="{name, classes} or {name, min, max}")
    metrics: dict[str, Any]
    background: dict[str, Any] | None = Field(description="the rows SHAP's explainer used, or null")
    size_bytes: int
    sha256: str
    formats: list[str] = Field(description="what `/model/download?format=` offers")
    kept: bool = Field(description="false when the model was too large to keep (see notes)")
    notes: str | None


MODEL_409 = (
    "No model: the job is not finished (`job_not_finished`), failed (`job_failed`) or was cancelled "
    "(`job_cancelled`), or its model was not kept (`model_not_kept`)."
)


@router.get(
    "/{job_id}/model",
    response_model=ModelCardPublic,
    responses={**BY_PREFIX, **errors.documented({409: MODEL_409})},
)
def get_model_card(job_id: str, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """The model card of a succeeded job."""
    return public_card(card_row(session, owned_job(session, job_id, user)))


@router.get(
    "/{job_id}/model/download",
    responses={
        **BY_PREFIX,
        200: {
            "description": "The model file, as an attachment (`X-Model-Sha256`: the kept model's sha256; "
            "a skops file lists its untrusted types in `X-Skops-Untrusted-Types`).",
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        },
        **errors.documented(
            {
                409: MODEL_409 + " Or the model has no file in this format (`format_not_applicable`), or "
                "the stored file changed (`model_integrity`).",
                422: "An unknown `format` (`unknown_format`, with the `allowed` ones).",
            }
        ),
    },
)
def download_model(
    job_id: str,
    session: SessionDep,
    user: CurrentUser,
    fmt: Annotated[str, Query(alias="format", description=f"one of {', '.join(FORMATS)}")] = "native",
) -> Response:
    """The job's model in one format: its booster's own file (native), a skops file, or another the
    card's `formats` lists."""
    job = owned_job(session, job_id, user)
    if fmt not in FORMATS:
        raise errors.CodedHTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "unknown_format",
            f"Unknown model format {fmt!r}: use one of {', '.join(FORMATS)}.",
            allowed=list(FORMATS),
        )
    card = card_row(session, job)
    if card.model_sha256 is None:
        raise _not_kept(job.id, card)
    found = kept_models.model_file(session, card.model_sha256, fmt)
    if found is None:
        refusals = card.card.get("format_refusals") or {}
        why = refusals.get(fmt) or "it was not written when the model was kept."
        raise errors.CodedHTTPException(
            status.HTTP_409_CONFLICT, "format_not_applicable", f"This model has no {fmt} file: {why}"
        )
    body = current_store().get_bytes(found.blob_key)
    if hashlib.sha256(body).hexdigest() != found.sha256:
        raise errors.CodedHTTPException(
            status.HTTP_409_CONFLICT,
            "model_integrity",
            f"The stored {fmt} file of job {job.id}'s model no longer has the sha256 recorded when it was "
            "written: it was changed or damaged, and is not served.",
            sha256=found.sha256,
        )
    headers = {
        "Content-Disposition": f'attachment; filename="{job.id}-{found.filename}"',
        "X-Model-Sha256": card.model_sha256,
        "ETag": f'"{found.sha256}"',
        **found.headers,
    }
    return Response(body, media_type=found.media_type, headers=headers)


def card_row(session: Session, job: Job) -> JobModel:
    """The job's card, or the 409 that says why it has none."""
    if job.status == JobStatus.failed:
        raise errors.CodedHTTPException(
            status.HTTP_409_CONFLICT,
            "job_failed",
            f"Job {job.id} failed ({job.error_code}): it has no model.",
            error_code=job.error_code,
        )
    if job.status == JobStatus.cancelled:
        raise errors.CodedHTTPException(
            status.HTTP_409_CONFLICT, "job_cancelled", f"Job {job.id} was cancelled: it has no model."
        )
    if job.status != JobStatus.succeeded:
        raise errors.CodedHTTPException(
            status.HTTP_409_CONFLICT,
            "job_not_finished",
            f"Job {job.id} is {job.status}: poll /jobs/{job.id} until it has succeeded.",
            status=job.status,
        )
    card = kept_models.card_of(session, job.id)
    if card is None:
        raise errors.CodedHTTPException(
            status.HTTP_409_CONFLICT,
            "model_not_kept",
            f"Job {job.id} kept no model: it was fitted on the Dask cluster, or before models were kept.",
            notes=None,
        )
    return card


def _not_kept(job_id: str, card: JobModel) -> errors.CodedHTTPException:
    notes = card.card.get("notes")
    return errors.CodedHTTPException(
        status.HTTP_409_CONFLICT, "model_not_kept", f"Job {job_id}'s model was not kept: {notes}", notes=notes
    )


def public_card(card: JobModel) -> dict[str, Any]:
    return {key: value for key, value in card.card.items() if key not in PRIVATE_CARD_KEYS}
