"""A succeeded job's kept model: its card (`GET /jobs/{id}/model`) and its download files
(`GET /jobs/{id}/model/download?format=`). The files are written by workers (the cheap ones with the
fit, the others on their first download, while this answers 202): this process only streams blobs, after
checking their sha256, and never loads a model. Another user's job answers 404, never 403."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from api import errors
from api.deps import CurrentUser, SessionDep
from api.model_files import card_row, model_file_response, public_card
from api.owned_jobs import BY_PREFIX, owned_job
from shared.ml.model.export import FORMATS

router = APIRouter(
    prefix="/jobs", tags=["models"], responses=errors.documented({401: "Missing or invalid token."})
)


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
        202: {
            "description": "A worker is writing the file in this format (made on its first download): "
            '`{"code": "model_converting", "detail": ...}`; ask again after `Retry-After` seconds.',
            "model": errors.ErrorBody,
        },
        **errors.documented(
            {
                409: MODEL_409 + " Or the model has no file in this format (`format_not_applicable`), or "
                "its file could not be made (`model_conversion_failed`, with the `reason`), or the stored "
                "file changed (`model_integrity`).",
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
    return model_file_response(session, owned_job(session, job_id, user), fmt)
