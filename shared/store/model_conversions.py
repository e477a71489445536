"""Download formats made on first download: a kept model's formats other than its booster's own file
(skops, onnx, mlflow, bundle) are written by a small worker task when a download first asks for them, not
at fit time.

A download that finds no file asks for its conversion (`ask`): the first asks publish the task, and so
does the first after `model_conversion_republish_seconds` without a file or a failure (the task was lost
with its worker); in between, downloads only answer 202, so a crowd of polling clients publishes one task.
The worker stores the file exactly as fit-time files are stored (`store_file`: a `model_files` row, its
blob, its bytes counted for every user whose jobs keep the model), once: a second task for the same file,
or one racing it, stores nothing. A conversion that fails records why (`record_failure`) and the download
answers 409 with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.blobs import gc as blob_gc
from shared.blobs.store import current_store, new_token
from shared.store.kept_models import DownloadFile, blob_sha256
from shared.tables import (
    JobModel,
    ModelConversion,
    ModelFile,
    StorageCounts,
    StoredModel,
    heartbeat_older_than,
    utcnow,
)


@dataclass(frozen=True)
class Asked:
    """What a download that found no file does: publish the conversion, wait for it, or answer its failure."""

    action: Literal["publish", "wait", "failed"]
    failure: str | None = None


def ask(session: Session, sha256: str, fmt: str, republish_after: float) -> Asked:
    """Record that format `fmt` of model `sha256` is wanted; whether this caller publishes its conversion.

    Only one caller publishes: the one that inserts the row, or that moves a stale `requested_at` on."""
    this = (ModelConversion.model_sha256 == sha256, ModelConversion.format == fmt)
    row = session.execute(select(ModelConversion.failure).where(*this)).first()
    if row is None:
        try:
            with session.begin_nested():
                session.add(ModelConversion(model_sha256=sha256, format=fmt, requested_at=utcnow()))
                session.flush()
        except IntegrityError:  # asked for concurrently: that caller publishes
            return Asked("wait")
        return Asked("publish")
    if row.failure is not None:
        return Asked("failed", row.failure)
    moved = session.execute(
        update(ModelConversion)
        .where(
            *this,
            ModelConversion.failure.is_(None),
            heartbeat_older_than(ModelConversion.requested_at, utcnow() - timedelta(seconds=republish_after)),
        )
        .values(requested_at=utcnow())
    )
    return Asked("publish" if moved.rowcount else "wait")  # type: ignore[attr-defined]


def has_file(session: Session, sha256: str, fmt: str) -> bool:
    return session.get(ModelFile, (sha256, fmt)) is not None


def store_file(session: Session, sha256: str, made: DownloadFile) -> bool:
    """Store a converted file of model `sha256` as fit-time files are stored; False when it is stored
    already (another task was first) or the model is gone. The model's row is locked (exclusively, against
    a card being kept for it meanwhile) so every user whose jobs keep it counts the file's bytes once."""
    locked = session.execute(
        select(StoredModel.sha256).where(StoredModel.sha256 == sha256).with_for_update()
    ).first()
    if locked is None or has_file(session, sha256, made.format):
        return False
    key = f"models/{sha256}/{new_token()}.{made.format}"
    current_store().put_bytes(key, made.body)
    blob_gc.written(session, key)
    size = len(made.body)
    session.add(
        ModelFile(
            model_sha256=sha256,
            format=made.format,
            blob_key=key,
            sha256=blob_sha256(made.body),
            size_bytes=size,
            filename=made.filename,
            media_type=made.media_type,
            headers=dict(made.headers),
        )
    )
    session.execute(
        update(StoredModel)
        .where(StoredModel.sha256 == sha256)
        .values(stored_bytes=StoredModel.stored_bytes + size)
    )
    keepers = select(JobModel.user_id).where(JobModel.model_sha256 == sha256).distinct()
    session.execute(
        update(StorageCounts)
        .where(StorageCounts.user_id.in_(keepers))
        .values(models_bytes=StorageCounts.models_bytes + size)
    )
    session.execute(
        delete(ModelConversion).where(
            ModelConversion.model_sha256 == sha256, ModelConversion.format == made.format
        )
    )
    session.flush()
    return True


def record_failure(session: Session, sha256: str, fmt: str, reason: str) -> None:
    """Remember why the conversion failed: downloads of this format answer 409 with it from now on."""
    if session.get(StoredModel, sha256) is None:
        return  # the model went meanwhile
    row = session.get(ModelConversion, (sha256, fmt))
    if row is None:
        session.add(ModelConversion(model_sha256=sha256, format=fmt, requested_at=utcnow(), failure=reason))
    else:
        row.failure = reason
    session.flush()
