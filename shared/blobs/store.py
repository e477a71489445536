"""Job bytes (uploads, results, fan-out parts, prepared models) in a blob store behind fsspec.

Postgres keeps each blob's key, size and checksum; the bytes live here. FITEXPLAIN_STORAGE_URL chooses
the store: empty is the local directory FITEXPLAIN_HOME/blobs; otherwise any fsspec URL (`s3://bucket/
prefix` with s3fs, `file:///path`, `memory://`). FITEXPLAIN_STORAGE_OPTIONS (JSON) is passed to the
filesystem as is (for S3: `endpoint_url`, `key`, `secret`, `client_kwargs`...); without it s3fs reads the
standard AWS variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, AWS_REGION).

Keys are written once and never rewritten (callers add a random token to each key), so a reader never
sees a blob change under it and a cached copy of a remote blob is valid for as long as it exists.
Writes are atomic for readers: a local file is written under a temporary name and renamed; an S3
object appears whole when its upload completes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from shared.settings import Settings, get_settings

CACHE_MAX_AGE_SECONDS = 3600.0  # cached downloads of remote blobs unused this long are removed
# What a local disk says when it cannot take a file: full, over quota, read-only, or not ours to write.
LOCAL_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


class BlobStoreUnreachable(OSError):
    """The blob store did not answer a read (its endpoint down or the network cut): worth trying again."""


class CacheUnwritable(OSError):
    """This machine's cache of remote blobs cannot be written (its disk is full or read-only): a fault of
    the machine, not of the job or the blob store, which another machine can run the job despite."""

    def __init__(self, cache_dir: Path, cause: OSError) -> None:
        super().__init__(
            cause.errno,
            f"the blob cache {cache_dir} (under FITEXPLAIN_HOME) cannot be written: "
            f"{cause.strerror or cause}",
        )
        self.cache_dir = cache_dir


@contextlib.contextmanager
def scratch_directory(home: Path, prefix: str) -> Iterator[Path]:
    """A fresh directory under `home`/tmp (FITEXPLAIN_HOME: the local store's disk, so a file made there
    is stored by a hard link), removed with everything in it on exit."""
    root = home / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def new_token() -> str:
    """A random part for a key: a blob is never overwritten, a new version gets a new key."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class BlobInfo:
    key: str
    size: int
    modified: datetime


class BlobStore:
    """Bytes under string keys ("results/<job>/<token>.json.gz"), in one directory or bucket prefix."""

    def __init__(self, url: str, *, cache_dir: Path, storage_options: dict[str, Any] | None = None) -> None:
        self.url = url
        self.fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
        self.root = root.rstrip("/")
        self.is_local = isinstance(self.fs, LocalFileSystem)
        self.cache_dir = cache_dir
        if self.is_local:
            Path(self.root).mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> str:
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"invalid blob key {key!r}")
        return f"{self.root}/{key}"

    def url_of(self, key: str) -> str:
        """The blob's fsspec URL (`s3://bucket/prefix/key`, `file:///dir/key`): another reader, such as a
        Dask worker, opens it with the same storage options."""
        url: str = self.fs.unstrip_protocol(self._path(key))
        return url

    def put_bytes(self, key: str, data: bytes) -> int:
        """Store `data` under `key`; returns its size."""
        path = self._path(key)
        if self.is_local:
            with _AtomicFile(Path(path)) as temp:
                temp.write(data)
        else:
            self.fs.pipe_file(path, data)
        return len(data)

    def put_file(self, key: str, local_path: Path, *, link: bool = False) -> int:
        """Store a local file under `key`, streamed (never read whole); returns its size.

        With `link` (the caller never writes to `local_path` again), a local store hard-links the file
        when it is on the same filesystem: no copy. The link appears whole, as a rename does.
        """
        path = self._path(key)
        size = local_path.stat().st_size
        if self.is_local and link:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(local_path, path)
                return size
            except OSError:  # another filesystem, or one without hard links: copied below
                pass
        if self.is_local:
            with _AtomicFile(Path(path)) as temp, open(local_path, "rb") as source:
                shutil.copyfileobj(source, temp, 1 << 20)
        else:
            self.fs.put_file(str(local_path), path)
        return size

    def get_bytes(self, key: str) -> bytes:
        return bytes(self.fs.cat_file(self._path(key)))

    def open(self, key: str) -> IO[bytes]:
        """A binary file object for streaming reads; the caller closes it."""
        stream: IO[bytes] = self.fs.open(self._path(key), "rb")  # fsspec is untyped
        return stream

    def local_path(self, key: str) -> Path:
        """A local file holding the blob: the file itself in a local store, else a cached download."""
        path = self._path(key)
        if self.is_local:
            if not os.path.exists(path):
                raise FileNotFoundError(path)
            return Path(path)
        cached = self.cache_dir / key
        if cached.exists():
            os.utime(cached)  # keeps it from the cache pruning while it is used
            return cached
        temp = cached.with_name(f".{cached.name}.{new_token()}.part")
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            temp.touch()
        except OSError as exc:
            raise CacheUnwritable(self.cache_dir, exc) from exc
        try:
            self.fs.get_file(path, str(temp))
            os.replace(temp, cached)
        except FileNotFoundError:
            raise
        except OSError as exc:
            if exc.errno in LOCAL_DISK_ERRNOS and not isinstance(exc, PermissionError):
                raise CacheUnwritable(self.cache_dir, exc) from exc  # full while the download was written
            raise BlobStoreUnreachable(f"reading blob {key!r}: {exc}") from exc
        except Exception as exc:  # s3fs and aiobotocore raise their own classes for a dropped connection
            raise BlobStoreUnreachable(f"reading blob {key!r}: {type(exc).__name__}: {exc}") from exc
        finally:
            temp.unlink(missing_ok=True)
        self._prune_cache()
        return cached

    def delete(self, key: str) -> None:
        """Remove a blob (and any cached copy); a missing blob is fine."""
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._path(key))
        if not self.is_local:
            (self.cache_dir / key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        if not self.is_local:
            self.fs.invalidate_cache()  # another process may have written or deleted it
        return bool(self.fs.exists(self._path(key)))

    def size(self, key: str) -> int:
        return int(self.fs.size(self._path(key)))

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        """Every blob whose key starts with the folder `prefix` ("results/"), with size and mtime."""
        base = f"{self.root}/{prefix}".rstrip("/")
        if not self.is_local:
            self.fs.invalidate_cache()
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return
        strip = len(self.fs._strip_protocol(self.root).rstrip("/")) + 1
        for path, info in found.items():
            key = self.fs._strip_protocol(path)[strip:]
            if info.get("type") == "file" and not os.path.basename(key).startswith("."):
                yield BlobInfo(key, int(info.get("size") or 0), _modified(info))

    def _prune_cache(self) -> None:
        cutoff = time.time() - CACHE_MAX_AGE_SECONDS
        for cached in self.cache_dir.rglob("*"):
            with contextlib.suppress(FileNotFoundError):
                if cached.is_file() and cached.stat().st_mtime < cutoff:
                    cached.unlink()


class _AtomicFile:
    """A file written under a temporary name in its final directory, renamed into place when complete."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> IO[bytes]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".part")
        self.temp = Path(temp)
        self.file = os.fdopen(fd, "wb")
        return self.file

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.file.close()
        if exc_type is None:
            os.replace(self.temp, self.path)
        else:
            self.temp.unlink(missing_ok=True)


def _modified(info: dict[str, Any]) -> datetime:
    """When a listed blob was written, from whichever field the filesystem reports."""
    for field in ("LastModified", "mtime", "created", "last_modified"):
        value = info.get(field)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC)
    return datetime.now(UTC)  # unknown: treated as new, so never swept by mistake


_stores: dict[tuple[int, str, str], BlobStore] = {}


def blob_store(settings: Settings) -> BlobStore:
    """The store the settings name, one per process (a forked child builds its own: s3fs's event loop
    and connections do not survive a fork)."""
    url = settings.storage_url or str((settings.home / "blobs").resolve())
    options = settings.storage_options
    cache_key = (os.getpid(), url, repr(sorted(options.items())))
    store = _stores.get(cache_key)
    if store is None:
        store = BlobStore(
            url, cache_dir=(settings.home / "cache" / "blobs").resolve(), storage_options=options
        )
        _stores.clear()  # a forked child drops its parent's
        _stores[cache_key] = store
    return store


def current_store() -> BlobStore:
    """This process's blob store, as its settings name it."""
    return blob_store(get_settings())
