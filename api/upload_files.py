"""An upload on local disk while it is validated: copied once from the multipart part, hashed as it goes.

Each request gets a directory of its own under FITEXPLAIN_HOME/tmp, removed when the request ends, also
on errors: nothing of an upload outlives its request there.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class ReceivedUpload:
    path: Path
    digest: str  # sha256 of the bytes as sent
    size: int
    filename: str
    content_type: str


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


def receive(part: BinaryIO, directory: Path, filename: str, content_type: str) -> ReceivedUpload:
    """Copy the spooled multipart part to `directory` in chunks, hashing it (blocking: call in a thread)."""
    path = directory / "upload"
    digest = hashlib.sha256()
    size = 0
    part.seek(0)
    with open(path, "wb") as out:
        while chunk := part.read(CHUNK_BYTES):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return ReceivedUpload(path, digest.hexdigest(), size, filename, content_type)
