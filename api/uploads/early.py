"""A CSV upload converted while it still streams in, when a core is free for it.

Converting only once the whole body is on disk leaves the cores idle while it arrives (its parsing is
the larger part of an upload's time). Once the first megabyte of a file part is written and reads as
CSV (plain or gzip), a conversion starts in a thread of its own, reading the part as it grows
(`GrowingUpload`), or at a later megabyte if no core was free then; the handler then takes its result
instead of converting (`api.uploads.files`).

Such a conversion takes a conversion slot (`api.uploads.conversion_slots`) only if another stays free: slow
clients can hold all but one slot, and uploads already received always find one. Whatever the
request's outcome, the conversion is over before the request's workspace is removed
(`api.uploads.stream.receive_form`).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from api.uploads.conversion_slots import give_back, take_spare
from shared.ml.errors import DataError
from shared.ml.ingest.upload import Ingested, detect_format, ingest
from shared.ml.spec import Limits

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

CANONICAL_SUFFIX = ".canonical.parquet"  # beside its part, one per part (`upload`, `upload-1`...)


class UploadBrokenOff(Exception):
    """The body stopped before the part's end (client gone, bad multipart, too large, or discarded)."""


class GrowingUpload:
    """A file part being written, readable as it grows: a reader waits for bytes not yet written."""

    def __init__(self, path: Path, written: int) -> None:
        self.path = path
        self._written = written
        self._complete = False
        self._broken = False
        self._changed = threading.Condition()

    def grew(self, written: int) -> None:
        """The writer flushed `written` bytes in all (called from its thread)."""
        with self._changed:
            self._written = written
            self._changed.notify_all()

    def complete(self) -> None:
        with self._changed:
            self._complete = True
            self._changed.notify_all()

    def break_off(self) -> None:
        with self._changed:
            self._broken = True
            self._changed.notify_all()

    def available(self, offset: int) -> int:
        """Bytes written past `offset`, waiting for some; 0 at the part's end."""
        with self._changed:
            while self._written <= offset and not self._complete and not self._broken:
                self._changed.wait()
            if self._broken:
                raise UploadBrokenOff
            return self._written - offset

    def wait_complete(self) -> None:
        with self._changed:
            while not self._complete and not self._broken:
                self._changed.wait()
            if self._broken:
                raise UploadBrokenOff

    def opener(self) -> Callable[[], BinaryIO]:
        """Opens the part: first as it grows, then (a second pass over it) once it is complete."""
        opened = 0

        def open_upload() -> BinaryIO:
            nonlocal opened
            opened += 1
            if opened > 1:
                self.wait_complete()
                return open(self.path, "rb")
            return io.BufferedReader(_Follower(self), buffer_size=1 << 20)

        return open_upload


class _Follower(io.RawIOBase):
    def __init__(self, upload: GrowingUpload) -> None:
        self.upload = upload
        self.file = open(upload.path, "rb")  # noqa: SIM115 - closed with the follower
        self.offset = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        available = self.upload.available(self.offset)
        if available == 0:
            return 0
        read = self.file.readinto(memoryview(buffer)[:available])
        self.offset += read
        return read

    def close(self) -> None:
        self.file.close()
        super().close()


@dataclass
class EarlyConversion:
    growing: GrowingUpload
    limits: Limits
    future: Future[Ingested]

    def discard(self) -> None:
        """Stop it (if it still reads the part) and wait until it is over (blocking)."""
        self.growing.break_off()
        self.future.exception()


def ingest_part(
    path: Path,
    filename: str,
    content_type: str,
    limits: Limits,
    open_upload: Callable[[], BinaryIO] | None = None,
) -> Ingested:
    """The file part at `path` converted to the canonical Parquet file beside it (`CANONICAL_SUFFIX`), as
    received or (`open_upload`) as it streams in; raises DataError naming its problem."""
    return ingest(
        path,
        path.with_name(path.name + CANONICAL_SUFFIX),
        limits,
        filename=filename,
        content_type=content_type,
        open_upload=open_upload,
    )


def convertible(path: Path, filename: str, content_type: str) -> bool:
    """Whether the part at `path` (its first bytes written) reads as CSV, plain or gzip; a format
    error is left to the handler's conversion, which reports it."""
    try:
        return detect_format(path, filename, content_type) in ("csv", "csv.gz")
    except DataError:
        return False


def start(
    path: Path, written: int, filename: str, content_type: str, limits: Limits
) -> EarlyConversion | None:
    """Start converting the CSV part at `path` (`written` bytes so far) if a spare slot is free; else None."""
    if not take_spare():
        return None
    growing = GrowingUpload(path, written)

    def convert() -> Ingested:
        try:
            return ingest_part(path, filename, content_type, limits, open_upload=growing.opener())
        finally:
            give_back()

    future: Future[Ingested] = Future()

    def run() -> None:
        future.set_running_or_notify_cancel()
        try:
            future.set_result(convert())
        except BaseException as exc:  # the handler gets it from the future
            future.set_exception(exc)

    # A daemon thread: one waiting for the rest of an upload never holds up the process's exit.
    threading.Thread(target=run, name="early-conversion", daemon=True).start()
    return EarlyConversion(growing, limits, future)
