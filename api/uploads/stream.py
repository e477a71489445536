"""A multipart body parsed as it streams in, each file part written straight to the request's workspace.

Starlette's own parser spools a file part into a SpooledTemporaryFile, one thread hop per network
chunk, and the upload would then be copied again to be hashed. Here each file part is written once, to
its own file in the workspace, hashed on the way, in batches of about a megabyte handed to a thread: the
event loop only runs python-multipart's boundary search. Everything else is Starlette's parser (limits,
errors, the FormData it returns), so FastAPI validates the form as it validates any other. The first
file part may start converting after its first batch (`api.uploads.early`).
"""

from __future__ import annotations

import codecs
import hashlib
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, Headers, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from api.uploads import early as upload_early
from api.uploads.early import EarlyConversion
from api.uploads.files import ReceivedUpload
from shared.settings import get_settings

FLUSH_BYTES = 1 << 20
PARSE_ERROR = "There was an error parsing the body"  # FastAPI's answer to a body it cannot read


class _Sink:
    """One file part on disk: data is queued by the parser's callbacks, written and hashed in a thread."""

    def __init__(self, path: Path, filename: str, content_type: str) -> None:
        self.path = path
        self.filename = filename
        self.content_type = content_type
        self.file = open(path, "w+b")  # noqa: SIM115 - closed with the form (UploadFile.close)
        self.digest = hashlib.sha256()
        self.size = 0
        self.pending: list[bytes | memoryview] = []
        self.pending_bytes = 0
        self.early: EarlyConversion | None = None
        self.convertible: bool | None = None  # as CSV while it streams in (None: not known yet)

    def add(self, data: bytes | memoryview) -> None:
        self.pending.append(data)
        self.pending_bytes += len(data)

    def take(self) -> list[bytes | memoryview]:
        pieces = self.pending
        self.pending = []
        self.pending_bytes = 0
        return pieces

    def write(self, pieces: list[bytes | memoryview]) -> None:
        """Blocking: in a thread (sha256 and the write release the GIL)."""
        for data in pieces:
            self.digest.update(data)
            self.size += len(data)
        self.file.writelines(pieces)
        if self.early is not None:
            self.file.flush()
            self.early.growing.grew(self.size)

    def write_and_start(self, pieces: list[bytes | memoryview]) -> None:
        """`write`, then start converting the part as it arrives if it is CSV and a core is free."""
        self.write(pieces)
        self.file.flush()
        if self.convertible is None:
            self.convertible = upload_early.convertible(self.path, self.filename, self.content_type)
        if self.convertible:
            limits = get_settings().limits()
            self.early = upload_early.start(self.path, self.size, self.filename, self.content_type, limits)

    @property
    def may_start(self) -> bool:
        return self.early is None and self.convertible is not False

    def finish(self) -> None:
        self.file.flush()
        self.file.seek(0)
        if self.early is not None:
            self.early.growing.complete()


class ReceivedFile(UploadFile):
    """A file part already on local disk, with the sha256 of its bytes."""

    def __init__(self, sink: _Sink, *, filename: str, headers: Headers) -> None:
        super().__init__(sink.file, size=0, filename=filename, headers=headers)
        self.sink = sink

    def received(self) -> ReceivedUpload:
        return ReceivedUpload(
            self.sink.path,
            self.sink.digest.hexdigest(),
            self.sink.size,
            self.filename or "",
            self.content_type or "",
            self.sink.early,
        )


class StreamingMultiPartParser(MultiPartParser):
    def __init__(self, headers: Headers, stream: Any, directory: Path) -> None:
        super().__init__(headers, stream)
        self.directory = directory
        self.sinks: list[_Sink] = []

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        file = self._current_part.file
        if isinstance(file, ReceivedFile):
            file.sink.add(memoryview(data)[start:end])  # no copy: the chunk is written within a megabyte
        else:
            super().on_part_data(data, start, end)

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._current_part.content_disposition)
        if b"filename" not in options:
            super().on_headers_finished()
            return
        if b"name" not in options:
            raise MultiPartException('The Content-Disposition header field "name" must be provided.')
        self._current_files += 1
        if self._current_files > self.max_files:
            raise MultiPartException(f"Too many files. Maximum number of files is {self.max_files}.")
        name = "upload" if not self.sinks else f"upload-{len(self.sinks)}"
        filename = _decode(options[b"filename"], self._charset)
        headers = Headers(raw=self._current_part.item_headers)
        sink = _Sink(self.directory / name, filename, headers.get("content-type", ""))
        self.sinks.append(sink)
        self._current_part.field_name = _decode(options[b"name"], self._charset)
        self._current_part.file = ReceivedFile(sink, filename=filename, headers=headers)

    async def parse(self) -> FormData:
        _, params = parse_options_header(self.headers["Content-Type"])
        charset = params.get(b"charset", b"utf-8")
        self._charset = _codec(charset.decode("latin-1") if isinstance(charset, bytes) else charset)
        boundary = params.get(b"boundary")
        if boundary is None:
            raise MultiPartException("Missing boundary in multipart.")
        callbacks: Any = {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_end": self.on_end,
        }
        try:
            parser = MultipartParser(boundary, callbacks)
            async for chunk in self.stream:
                parser.write(chunk)
                for index, sink in enumerate(self.sinks):
                    if sink.pending_bytes >= FLUSH_BYTES:
                        start = index == 0 and sink.may_start  # the first file part, not converting yet
                        await run_in_threadpool(sink.write_and_start if start else sink.write, sink.take())
            parser.finalize()
            for sink in self.sinks:
                await run_in_threadpool(sink.write, sink.take())
                sink.finish()
                self._set_size(sink)
        except BaseException as exc:
            for sink in self.sinks:
                if sink.early is not None:
                    sink.early.growing.break_off()
                sink.file.close()
            if isinstance(exc, FormParserError):
                raise MultiPartException("Invalid multipart data.") from exc
            raise
        return FormData(self.items)

    def _set_size(self, sink: _Sink) -> None:
        for _, value in self.items:
            if isinstance(value, ReceivedFile) and value.sink is sink:
                value.size = sink.size


def _decode(raw: bytes, charset: str) -> str:
    try:
        return raw.decode(charset)
    except (UnicodeDecodeError, LookupError):
        return raw.decode("latin-1")


def _codec(charset: str) -> str:
    try:
        return codecs.lookup(charset).name
    except LookupError:
        return "latin-1"


def is_multipart(request: Request) -> bool:
    content_type, _ = parse_options_header(request.headers.get("Content-Type"))
    return content_type == b"multipart/form-data"


@asynccontextmanager
async def receive_form(request: Request, directory: Path) -> AsyncIterator[None]:
    """Parse the request's multipart body into `directory`, and give it to the request as its form
    (`request.form()` then returns it: FastAPI reads and validates it as usual). Errors are those of
    Starlette and FastAPI for the same body: 400 naming the multipart problem, or FastAPI's 400.

    On leaving, a conversion started while the body streamed in is over (stopped if the handler did not
    take its result), so `directory` can go."""
    parser = StreamingMultiPartParser(request.headers, None, directory)
    try:
        try:
            async with aclosing(request.stream()) as stream:
                parser.stream = stream
                request._form = await parser.parse()
        except MultiPartException as exc:
            raise HTTPException(status_code=400, detail=exc.message) from exc
        except HTTPException:
            raise
        except Exception as exc:
            raise HTTPException(status_code=400, detail=PARSE_ERROR) from exc
        yield
    finally:
        await _settle(parser.sinks)


async def _settle(sinks: list[_Sink]) -> None:
    conversions = [sink.early for sink in sinks if sink.early is not None]
    if conversions:
        with anyio.CancelScope(shield=True):  # also when the request is cancelled
            for early in conversions:
                if not early.future.done():
                    await run_in_threadpool(early.discard)
