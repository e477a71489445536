"""A succeeded job's kept model as the API and the dashboard answer it: its card, or the 409 that says why
it has none, and its download files, streamed only while their bytes have their recorded sha256. The files
are written by workers: the cheap formats by the one that fitted the model (worker/keep_model.py), the
others by a small task on their first download (worker/convert_model.py), which this process publishes
while it answers 202 `model_converting`. This process never loads a model."""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import Response, status
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from api import errors
from shared.blobs.store import current_store
from shared.db import commit_without_flush_wait
from shared.dispatch.publish import publish_conversion
from shared.ml.model.export import FORMATS
from shared.settings import get_settings
from shared.store import kept_models, model_conversions
from shared.tables import Job, JobModel, JobStatus

PRIVATE_CARD_KEYS = ("format_refusals",)  # kept with the card for the API's answers, not shown
RETRY_AFTER_SECONDS = 2  # a conversion takes seconds: the 202's Retry-After


def model_file_response(session: Session, job: Job, fmt: str) -> Response:
    """The job's model in format `fmt`, as an attachment; 202 while a worker makes it; the 4xx that says
    why not."""
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
    if found is None and fmt in card.card.get("formats", []):
        return _converting(session, job.id, card.model_sha256, fmt)
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


def _converting(session: Session, job_id: str, sha256: str, fmt: str) -> Response:
    """202 while the file is being made (publishing its conversion when none is under way), or the 409
    that says why it could not be made."""
    asked = model_conversions.ask(session, sha256, fmt, get_settings().model_conversion_republish_seconds)
    if asked.action == "failed":
        raise errors.CodedHTTPException(
            status.HTTP_409_CONFLICT,
            "model_conversion_failed",
            f"Job {job_id}'s model could not be written as {fmt}: {asked.failure}",
            reason=asked.failure,
        )
    if asked.action == "publish":
        commit_without_flush_wait(session)  # a lost request row only makes a later download publish again
        session.commit()  # before the publish: a worker never finds the file asked for and unrecorded
        publish_conversion(job_id, fmt)
    return JSONResponse(
        {
            "code": "model_converting",
            "detail": f"Job {job_id}'s model is being written as {fmt} by a worker: ask again in "
            f"{RETRY_AFTER_SECONDS} s.",
        },
        status_code=status.HTTP_202_ACCEPTED,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


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
