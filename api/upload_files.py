"""An upload on local disk while it is validated: written once as it streams in (`api.upload_stream`),
and converted to the canonical Parquet file (`converted`): while it streams in if a core was free for it
(`api.upload_early`), else in one of the conversion slots.

Each request gets a directory of its own under FITEXPLAIN_HOME/tmp, removed when the request ends, also
on errors: nothing of an upload outlives its request there.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from api.upload_early import CANONICAL_NAME, EarlyConversion
from shared.ml.ingest import Ingested, ingest
from shared.ml.spec import Limits

# Conversions of received uploads at once: one per core. More only share the cores (each answer comes
# later, all of them in memory at once); the others' bytes keep streaming to disk meanwhile. (Uploads
# converted as they stream in have slots of their own: `api.upload_early`.)
CONVERSIONS = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))


@dataclass(frozen=True)
class ReceivedUpload:
    path: Path
    digest: str  # sha256 of the bytes as sent
    size: int
    filename: str
    content_type: str
    early: EarlyConversion | None = None  # its conversion, if one started while it streamed in


@contextmanager
def workspace(home: Path) -> Iterator[Path]:
    """A fresh directory under `home`/tmp, removed with everything in it on exit."""
    root = home / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="upload-", dir=root))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def conversion_slot() -> Iterator[None]:
    """Wait for a free conversion slot (blocking: call in a thread); on leaving it, give the memory
    pyarrow's pool keeps back to the system, so the API's RSS does not ratchet up upload after upload."""
    with CONVERSIONS:
        try:
            yield
        finally:
            pa.default_memory_pool().release_unused()


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
        yield ingest(
            received.path,
            received.path.with_name(CANONICAL_NAME),
            limits,
            filename=received.filename,
            content_type=received.content_type,
        )
