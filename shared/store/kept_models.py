"""What a succeeded job keeps of its fitted model: its card, and the model stored once per content.

The worker that fitted the model writes, in the transaction that makes the job succeeded, the model's
pickle (`shared.ml.model.codec`: its key holds its sha256) and its cheap download files (the others are
made on first download: `shared.store.model_conversions`), then the `models` and
`model_files` rows (unless the same model is stored already: a deterministic re-run), then the job's card
(`job_models`). A model over FITEXPLAIN_MAX_MODEL_BYTES is not stored: its card says so. Storage counts
(`storage_usage.models_bytes`) are kept by triggers (migration 0006); a model goes when no job keeps it
any more (`release_model`, after a delete, a cancel or retention), its blobs after the commit.

Races on one model are settled as for uploads (`shared.store.uploads`): keeping takes a shared lock of
the model's row, releasing an exclusive one before it looks for remaining cards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.blobs import gc as blob_gc
from shared.blobs.store import current_store, new_token
from shared.tables import Job, JobModel, ModelConversion, ModelFile, StoredModel, User


@dataclass(frozen=True)
class DownloadFile:
    """A kept model in one download format, as the worker made it."""

    format: str
    body: bytes
    filename: str
    media_type: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelToKeep:
    """A fitted model's pickle (`body`, its `sha256`) and its download files."""

    body: bytes
    sha256: str
    files: list[DownloadFile]


def lock_owner(session: Session, job_id: str) -> None:
    """Share-lock the job's user row before the job's success touches the user's storage counts.

    The success updates the counts twice (its result, then its model); Postgres checks the second update's
    foreign key to the user's row because the first one wrote that row version, and that check waits for
    a submit holding the user's row, which in turn waits for the counts: a deadlock. Taking the user's row
    first gives both the submit's order (user, then counts)."""
    session.execute(
        select(User.id)
        .join(Job, Job.user_id == User.id)
        .where(Job.id == job_id)
        .with_for_update(read=True, key_share=True, of=User)
    ).all()


def keep_model(
    session: Session, job_id: str, user_id: int, card: dict[str, Any], model: ModelToKeep | None
) -> None:
    """Write the job's card, keeping `model` (None: not kept; the card says why) once per content."""
    if model is not None:
        _store_once(session, model)
    session.add(
        JobModel(
            job_id=job_id, user_id=user_id, model_sha256=None if model is None else model.sha256, card=card
        )
    )
    session.flush()


def _store_once(session: Session, model: ModelToKeep) -> None:
    locked = select(StoredModel.sha256).where(StoredModel.sha256 == model.sha256)
    for _ in range(3):
        if session.execute(locked.with_for_update(read=True, key_share=True)).first() is not None:
            return
        token = new_token()
        blobs = current_store()
        key = f"models/{model.sha256}/{token}.pickle"
        blobs.put_bytes(key, model.body)
        blob_gc.written(session, key)
        rows: list[ModelFile] = []
        for found in model.files:
            file_key = f"models/{model.sha256}/{token}.{found.format}"
            blobs.put_bytes(file_key, found.body)
            blob_gc.written(session, file_key)
            rows.append(
                ModelFile(
                    model_sha256=model.sha256,
                    format=found.format,
                    blob_key=file_key,
                    sha256=blob_sha256(found.body),
                    size_bytes=len(found.body),
                    filename=found.filename,
                    media_type=found.media_type,
                    headers=dict(found.headers),
                )
            )
        stored = len(model.body) + sum(row.size_bytes for row in rows)
        try:
            with session.begin_nested():
                session.add(
                    StoredModel(
                        sha256=model.sha256, blob_key=key, size_bytes=len(model.body), stored_bytes=stored
                    )
                )
                session.flush()
                session.add_all(rows)
            return
        except IntegrityError:  # stored concurrently by another worker: lock that copy instead
            for written in (key, *(row.blob_key for row in rows)):
                blobs.delete(written)
    raise RuntimeError(f"model {model.sha256} was stored and removed concurrently three times")


def blob_sha256(body: bytes) -> str:
    import hashlib

    return hashlib.sha256(body).hexdigest()


def release_model(session: Session, sha256: str | None) -> bool:
    """Delete a stored model that no job's card keeps any more, with its files; True if it was deleted.
    Its blobs go after the commit."""
    if sha256 is None:
        return False
    row = session.execute(
        select(StoredModel.blob_key).where(StoredModel.sha256 == sha256).with_for_update()
    ).first()
    if row is None or session.scalar(select(exists().where(JobModel.model_sha256 == sha256))):
        return False
    file_keys = session.scalars(select(ModelFile.blob_key).where(ModelFile.model_sha256 == sha256)).all()
    session.execute(delete(ModelFile).where(ModelFile.model_sha256 == sha256))
    session.execute(delete(ModelConversion).where(ModelConversion.model_sha256 == sha256))
    session.execute(delete(StoredModel).where(StoredModel.sha256 == sha256))
    blob_gc.delete_after_commit(session, [row.blob_key, *file_keys])
    return True


def models_of_jobs(session: Session, job_ids: Any) -> set[str]:
    """The stored models the cards of these jobs keep (`job_ids`: ids, or a subquery of them)."""
    found = session.scalars(
        select(JobModel.model_sha256).where(JobModel.job_id.in_(job_ids), JobModel.model_sha256.is_not(None))
    ).all()
    return {sha256 for sha256 in found if sha256 is not None}


def card_of(session: Session, job_id: str) -> JobModel | None:
    return session.get(JobModel, job_id)


def model_file(session: Session, sha256: str, fmt: str) -> ModelFile | None:
    return session.get(ModelFile, (sha256, fmt))


def stored_model(session: Session, sha256: str) -> StoredModel | None:
    return session.get(StoredModel, sha256)
