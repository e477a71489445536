"""An upload on local disk while it is validated: written once as it streams in (`api.uploads.stream`),
and converted to the canonical Parquet file (`converted`): while it streams in if a core was free for it
(`api.uploads.early`), else in a conversion slot (`api.uploads.conversion_slots`) once received.

Each request gets a directory of its own under FITEXPLAIN_HOME/tmp, removed when the request ends, also
on errors: nothing of an upload outlives its request there.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from api.uploads.conversion_slots import conversion_slot
from api.uploads.early import EarlyConversion, ingest_part
from shared.blobs.store import scratch_directory
from shared.ml.ingest.upload import Ingested
from shared.ml.spec import Limits


@dataclass(frozen=True)
class ReceivedUpload:
    path: Path
    digest: str  # sha256 of the bytes as sent
    size: int
    filename: str
    content_type: str
    early: EarlyConversion | None = None  # its conversion, if one started while it streamed in


def workspace(home: Path) -> AbstractContextManager[Path]:
    """A fresh directory under `home`/tmp, removed with everything in it on exit."""
    return scratch_directory(home, "upload-")


@contextmanager
def converted(received: ReceivedUpload, limits: Limits) -> Iterator[Ingested]:
    """The upload's canonical file (blocking: call in a thread); raises DataError naming its problem.
    An upload converted as it streamed in (with these limits) is not converted again; any other one is
    converted in a conversion slot, held until the block ends."""
    early = received.early
    if early is not None:
        if early.limits == limits:
            yield early.future.result()
            return
        early.discard()
    with conversion_slot():
        yield ingest_part(received.path, received.filename, received.content_type, limits)
