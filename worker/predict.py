"""What a predict job's computation loads: the kept model it scores with, verified before it is unpickled
(the computation itself is `worker.tasks.compute_predict`)."""

from __future__ import annotations

from shared.blobs.store import current_store
from shared.db import session_scope
from shared.ml.errors import UserInputError
from shared.ml.model import codec
from shared.ml.model.kept import KeptModel
from shared.tables import StoredModel


class ModelGone(UserInputError):
    """The kept model a predict job names was deleted (with its job) before the job ran."""

    status = 409


def load_kept(sha256: str) -> KeptModel:
    """The kept model stored under `sha256`, its bytes verified before they are unpickled
    (codec.ModelIntegrityError otherwise)."""
    with session_scope() as session:
        stored = session.get(StoredModel, sha256)
        key = stored.blob_key if stored is not None else None
    if key is None:
        raise ModelGone(
            "model_gone",
            "The model this job scores with was deleted (with the job that fitted it) meanwhile.",
        )
    return codec.load(current_store().get_bytes(key), sha256)
