"""The one way our own objects (kept models, fan-out's prepared jobs) become bytes and come back.

`dump` pickles; `load` checks the bytes' sha256 against the one the caller holds (a blob's key is its
sha256: content addressed) BEFORE unpickling, and refuses with `ModelIntegrityError` on a mismatch, so
bytes changed in the store are never unpickled. Only our workers write these blobs; nothing a user sent
is ever loaded here.
"""

from __future__ import annotations

import hashlib
import pickle
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.ml.model.kept import KeptModel

PROTOCOL = 5


class ModelIntegrityError(Exception):
    """Stored bytes whose sha256 is not the one recorded: changed or damaged, and not loaded."""

    code = "model_integrity"

    def __init__(self, expected: str, found: str) -> None:
        super().__init__(
            f"The stored bytes' sha256 is {found}, not the recorded {expected}: they were changed or "
            "damaged and were not loaded."
        )
        self.expected = expected
        self.found = found


def sha256_of(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def dump_object(value: object) -> bytes:
    """The pickle of one of our own objects."""
    return pickle.dumps(value, protocol=PROTOCOL)


def load_object(body: bytes, sha256: str) -> Any:
    """The object pickled in `body`, once its sha256 is `sha256`; ModelIntegrityError otherwise."""
    found = sha256_of(body)
    if found != sha256.lower():
        raise ModelIntegrityError(sha256, found)
    # Safe to unpickle: the bytes are the very ones our worker wrote (their sha256 was recorded then).
    return pickle.loads(body)


def dump(kept: KeptModel) -> bytes:
    """A kept model's bytes (store them under their `sha256_of`)."""
    return dump_object(kept)


def load(body: bytes, sha256: str) -> KeptModel:
    """The kept model in `body`, verified against `sha256` before it is unpickled."""
    from shared.ml.model.kept import KeptModel

    kept = load_object(body, sha256)
    if not isinstance(kept, KeptModel):
        raise TypeError(f"the bytes hold a {type(kept).__name__}, not a KeptModel")
    return kept
