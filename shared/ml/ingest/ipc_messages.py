"""What each message of an Arrow IPC file or stream declares, read before its body is decoded.

pyarrow decompresses a record batch (LZ4 or ZSTD buffers) as it reads it: a batch of a few kilobytes can
declare millions of rows. Each message's metadata (a flatbuffer, `Message.fbs` and `Schema.fbs` of the
Arrow format) says how many rows it holds and, for a compressed body, each buffer starts with its
decompressed length: both are read here, message by message, without decoding anything.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.ipc as ipc

RECORD_BATCH = 3  # MessageHeader union: Schema = 1, DictionaryBatch = 2, RecordBatch = 3
DICTIONARY_BATCH = 2
FILE_PREFIX = 8  # "ARROW1" and two bytes of padding, then the stream format


@dataclass(frozen=True)
class Declared:
    """One data message: a record batch (or a dictionary), the rows it declares, the bytes its buffers
    decode to, and the offset in the file where it ends."""

    batch: bool
    rows: int
    decoded_bytes: int
    end: int


class BadMessage(ValueError):
    """Metadata that is not a flatbuffer of the Arrow format."""


def declared_messages(path: str, found: str, record_batches: int | None = None) -> Iterator[Declared]:
    """The data messages of the IPC file or stream at `path` in order (the schema message skipped);
    for a file, the first `record_batches` record batches (its footer's count) and the dictionaries
    before them."""
    source = pa.memory_map(path)
    if found == "arrow":
        source.seek(FILE_PREFIX)
    reader = ipc.MessageReader.open_stream(source)
    seen = 0
    while record_batches is None or seen < record_batches:
        try:
            message = reader.read_next_message()
        except StopIteration:
            return
        kind = message.type
        if kind not in ("record batch", "dictionary"):
            continue
        rows, decoded = _batch(message.metadata.to_pybytes(), message.body)
        seen += kind == "record batch"
        yield Declared(kind == "record batch", rows, decoded, source.tell())


def _batch(metadata: bytes, body: pa.Buffer | None) -> tuple[int, int]:
    """(rows, decoded bytes) of a RecordBatch or DictionaryBatch message."""
    try:
        root = _table(metadata, 0)
        header_type = _scalar(metadata, root, 1, "<B", 0)
        header = _offset_field(metadata, root, 2)
        if header is None:
            raise BadMessage("a data message without a header")
        if header_type == DICTIONARY_BATCH:
            header = _offset_field(metadata, header, 1)
            if header is None:
                raise BadMessage("a dictionary without data")
        elif header_type != RECORD_BATCH:
            raise BadMessage(f"header type {header_type}")
        rows = _scalar(metadata, header, 0, "<q", 0)
        buffers = _buffers(metadata, header)
        compressed = _offset_field(metadata, header, 3) is not None
    except (struct.error, IndexError) as err:
        raise BadMessage(str(err)) from None
    body_bytes = memoryview(body) if body is not None else memoryview(b"")
    size = len(body_bytes)
    if rows < 0:
        raise BadMessage("a negative row count")
    if not compressed:
        return rows, size
    decoded = 0
    for offset, length in buffers:
        if length < 8:
            continue
        if offset < 0 or offset + 8 > len(body_bytes):
            raise BadMessage("a buffer outside the message's body")
        (prefix,) = struct.unpack_from("<q", body_bytes, offset)
        decoded += length - 8 if prefix == -1 else prefix
    return rows, decoded


def _table(buf: bytes, position: int) -> int:
    offset: int = struct.unpack_from("<I", buf, position)[0]
    return position + offset


def _field(buf: bytes, table: int, index: int) -> int | None:
    """The position of field `index` of the table at `table`, None when absent (its default)."""
    (back,) = struct.unpack_from("<i", buf, table)
    vtable = table - back
    (vtable_size,) = struct.unpack_from("<H", buf, vtable)
    entry = 4 + 2 * index
    if entry + 2 > vtable_size:
        return None
    (offset,) = struct.unpack_from("<H", buf, vtable + entry)
    return table + offset if offset else None


def _scalar(buf: bytes, table: int, index: int, form: str, default: int) -> int:
    position = _field(buf, table, index)
    if position is None:
        return default
    value: int = struct.unpack_from(form, buf, position)[0]
    return value


def _offset_field(buf: bytes, table: int, index: int) -> int | None:
    position = _field(buf, table, index)
    return None if position is None else _table(buf, position)


def _buffers(buf: bytes, record_batch: int) -> list[tuple[int, int]]:
    """The (offset, length) in the body of each buffer of a RecordBatch table."""
    vector = _offset_field(buf, record_batch, 2)
    if vector is None:
        return []
    (count,) = struct.unpack_from("<I", buf, vector)
    if count > (len(buf) - vector) // 16:
        raise BadMessage("more buffers than the metadata holds")
    return [struct.unpack_from("<qq", buf, vector + 4 + 16 * i) for i in range(count)]
