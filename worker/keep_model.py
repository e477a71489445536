"""Keep a succeeded job's fitted model: its pickle, its download files and its card.

All of it is made here, in the computation child that fitted the model, before the job's success is
written, except the download formats that take time: only the booster's own file (`export.AT_FIT_TIME`:
native) is written at fit time; the card lists every format that applies, and the others (skops, onnx,
mlflow, bundle) are made by a worker on their first download (worker/convert_model.py), never in the API.
A model over FITEXPLAIN_MAX_MODEL_BYTES is not kept (its card says so), and a fit-time format that fails
to write is logged and left out of the card's formats: keeping a model never fails its job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from shared.ml.model import codec, export
from shared.ml.model.card import card_fields
from shared.ml.model.kept import kept_from
from shared.ml.pipeline import PreparedJob
from shared.settings import Settings
from shared.store.jobstore import succeed
from shared.store.kept_models import DownloadFile, ModelToKeep, keep_model, lock_owner
from shared.tables import Job

log = logging.getLogger("fitexplain.worker")


@dataclass(frozen=True)
class KeptModelPlan:
    """What the job's success writes besides its result: the card's fields and the model (None: not kept)."""

    card: dict[str, Any]
    model: ModelToKeep | None


def plan_model(
    job_id: str,
    prepared: PreparedJob,
    settings: Settings,
    at_fit_time: tuple[str, ...] = export.AT_FIT_TIME,
) -> KeptModelPlan | None:
    """The model to keep for this fitted job and its card, with its files in the `at_fit_time` formats
    that apply (benchmarks/keep_model.py times other choices); None when it could not be made (logged)."""
    try:
        kept = kept_from(prepared, settings.limits())
        body = codec.dump(kept)
        sha256 = codec.sha256_of(body)
        card: dict[str, Any] = {**card_fields(kept), "size_bytes": len(body), "sha256": sha256}
        if len(body) > settings.max_model_bytes:
            card |= {
                "formats": [],
                "kept": False,
                "notes": f"The fitted model takes {len(body):,} bytes, more than FITEXPLAIN_MAX_MODEL_BYTES "
                f"({settings.max_model_bytes:,}): it was not kept and cannot be downloaded.",
            }
            return KeptModelPlan(card, None)
        applicable = export.formats_for(kept)
        files = _download_files(job_id, kept, [name for name in applicable if name in at_fit_time])
        written = {found.format for found in files}
        refused = export.refusals(kept)
        card |= {
            "formats": [name for name in applicable if name in written or name not in at_fit_time],
            "kept": True,
            "notes": " ".join(f"{name}: {reason}" for name, reason in refused.items()) or None,
            "format_refusals": refused,  # the API's 409 says why; not shown on the card
        }
        return KeptModelPlan(card, ModelToKeep(body, sha256, files))
    except Exception:
        log.exception("job %s: its model could not be kept", job_id)
        return None


def _download_files(job_id: str, kept: Any, names: list[str]) -> list[DownloadFile]:
    files = []
    for name in names:
        try:
            made = export.export(kept, name)
        except Exception:
            log.exception("job %s: its model could not be written as %s", job_id, name)
            continue
        files.append(DownloadFile(name, made.body, made.filename, made.media_type, dict(made.headers)))
    return files


def succeed_keeping_model(
    session: Session,
    job_id: str,
    worker: str,
    result: dict[str, Any],
    parquet: bytes | None,
    *,
    attempt: int,
    plan: KeptModelPlan | None,
) -> bool:
    """Store the result and mark the job succeeded (`jobstore.succeed`), then keep its model (`plan`; None:
    no card), in the caller's transaction; False when the job is no longer `worker`'s.

    Both update the user's storage counts; the user's row is share-locked first (`lock_owner`), so this
    takes the user, then the counts, as a submit of the same user does, and the two cannot deadlock."""
    if plan is not None:
        lock_owner(session, job_id)
    stored = succeed(session, job_id, worker, result, parquet, attempt=attempt)
    if stored and plan is not None:
        record_model(session, job_id, plan)
    return stored


def record_model(session: Session, job_id: str, plan: KeptModelPlan) -> None:
    """Write the card (with the job's id, endpoint and parameters) and keep the model, in the transaction
    that made the job succeeded."""
    job = session.get(Job, job_id)
    assert job is not None, "a job that just succeeded has its row"
    card = {"job_id": job_id, "endpoint": job.endpoint, "params": job.params, **plan.card}
    keep_model(session, job_id, job.user_id, card, plan.model)
