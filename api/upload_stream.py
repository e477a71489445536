"""A multipart body parsed as it streams in, each file part written straight to the request's workspace.

Starlette's parser spools a file part into a SpooledTemporaryFile, one thread hop per network chunk, and
the upload was then copied again to be hashed. Here each file part is written once, to its own file in
the workspace, hashed on the way, in batches of about a megabyte handed to a thread: the event loop
only runs python-multipart's boundary search. Everything else is Starlette's parser (limits, errors,
the FormData it returns), so FastAPI validates the form as before.
"""

from __future__ import annotations

import codecs
import hashlib
from contextlib import aclosing
from pathlib import Path
from typing import Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, Headers, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from api.upload_files import ReceivedUpload

FLUSH_BYTES = 1 << 20
PARSE_ERROR = "There was an error parsing the body"  # FastAPI's answer to a body it cannot read


class _Sink:
    """One file part on disk: data is queued by the parser's callbacks, written and hashed in a thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = open(path, "w+b")  # noqa: SIM115 - closed with the form (UploadFile.close)
        self.digest = hashlib.sha256()
        self.size = 0
        self.pending: list[bytes] = []
        self.pending_bytes = 0

    def add(self, data: bytes) -> None:
        self.pending.append(data)
        self.pending_bytes += len(data)

    def take(self) -> list[bytes]:
        pieces = self.pending
        self.pending = []
        self.pending_bytes = 0
        return pieces

    def write(self, pieces: list[bytes]) -> None:
        """Blocking: in a thread (sha256 and the write release the GIL)."""
        for data in pieces:
            self.digest.update(data)
            self.size += len(data)
        self.file.writelines(pieces)

    def finish(self) -> None:
        self.file.flush()
        self.file.seek(0)


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
        )


class StreamingMultiPartParser(MultiPartParser):
    def __init__(self, headers: Headers, stream: Any, directory: Path) -> None:
        super().__init__(headers, stream)
        self.directory = directory
        self.sinks: list[_Sink] = []

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        file = self._current_part.file
        if isinstance(file, ReceivedFile):
            file.sink.add(data[start:end])
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
        sink = _Sink(self.directory / name)
        self.sinks.append(sink)
        self._current_part.field_name = _decode(options[b"name"], self._charset)
        self._current_part.file = ReceivedFile(
            sink,
            filename=_decode(options[b"filename"], self._charset),
            headers=Headers(raw=self._current_part.item_headers),
        )

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
                for sink in self.sinks:
                    if sink.pending_bytes >= FLUSH_BYTES:
                        await run_in_threadpool(sink.write, sink.take())
            parser.finalize()
            for sink in self.sinks:
                await run_in_threadpool(sink.write, sink.take())
                sink.finish()
                self._set_size(sink)
        except BaseException as exc:
            for sink in self.sinks:
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


async def receive_form(request: Request, directory: Path) -> None:
    """Parse the request's multipart body into `directory`, and give it to the request as its form
    (`request.form()` then returns it: FastAPI reads and validates it as usual). Errors are those of
    Starlette and FastAPI for the same body: 400 naming the multipart problem, or FastAPI's 400."""
    try:
        async with aclosing(request.stream()) as stream:
            request._form = await StreamingMultiPartParser(request.headers, stream, directory).parse()
    except MultiPartException as exc:
        raise HTTPException(status_code=400, detail=exc.message) from exc
    except HTTPException:
        raise
    except Exception as exc:
        raise HTTPException(status_code=400, detail=PARSE_ERROR) from exc
