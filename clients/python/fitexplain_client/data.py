"""What a user passes as `data`, turned into the upload the service takes.

A path is streamed from its file as it is sent (never read whole); bytes are sent as they are; a
pandas.DataFrame is sent as Parquet, so its dtypes survive (CSV when pyarrow is missing), with a
`training_index` column when one is given. The target and id columns keep their names: the service reads
them by the `target=` and `id_column=` parameters. `background=` is `sample:N` (a query parameter), or a
path, bytes or a DataFrame sent the same way as a second file part, `background`."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

DataLike = str | os.PathLike[str] | bytes | Any  # Any: a pandas.DataFrame (pandas is optional)
#: `background=`: "sample:N", or rows sent as a file part (a path, bytes or a DataFrame).
BackgroundLike = DataLike
PARQUET_TYPE = "application/vnd.apache.parquet"
SAMPLE_PREFIX = "sample:"


@dataclass(frozen=True)
class Upload:
    """A file part of a request (`part`: `file`, or `background`): a file to stream from, or bytes."""

    filename: str
    content_type: str
    path: Path | None = None
    content: bytes | None = None
    part: str = "file"

    @contextmanager
    def open(self) -> Iterator[dict[str, tuple[str, Any, str]]]:
        """The multipart `files` of one request; httpx reads a file object in chunks as it sends."""
        if self.path is not None:
            with self.path.open("rb") as handle:
                yield {self.part: (self.filename, handle, self.content_type)}
        else:
            yield {self.part: (self.filename, io.BytesIO(self.content or b""), self.content_type)}


def upload(
    data: DataLike, target: str | None = None, training_index: str | Sequence[int] | None = None
) -> Upload:
    """The upload of `data`: a path (str or PathLike), bytes, or a pandas.DataFrame."""
    if isinstance(data, bytes | bytearray):
        _no_training_index(training_index, "bytes")
        return Upload("data.csv", "text/csv", content=bytes(data))
    if isinstance(data, str | os.PathLike):
        _no_training_index(training_index, "a file")
        path = Path(data)
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
        return Upload(path.name, _content_type(path), path=path)
    if hasattr(data, "to_csv") and hasattr(data, "columns"):
        frame = prepared_frame(data, target, training_index)
        parquet = _parquet_bytes(frame)
        if parquet is not None:
            return Upload("data.parquet", PARQUET_TYPE, content=parquet)
        return Upload("data.csv", "text/csv", content=frame.to_csv(index=False).encode("utf-8"))
    raise TypeError(f"data must be a path, bytes or a pandas.DataFrame, not {type(data).__name__}")


def rows_upload(data: DataLike) -> Upload:
    """The upload of new rows to score (`Client.predict`): a path, bytes, or a pandas.DataFrame sent as it
    is (a target column may be absent)."""
    if hasattr(data, "to_csv") and hasattr(data, "columns"):
        parquet = _parquet_bytes(data)
        if parquet is not None:
            return Upload("data.parquet", PARQUET_TYPE, content=parquet)
        return Upload("data.csv", "text/csv", content=data.to_csv(index=False).encode("utf-8"))
    return upload(data)


def background_part(params: dict[str, Any]) -> tuple[dict[str, Any], Upload | None]:
    """`params` and the `background` file part: `background="sample:N"` stays a query parameter; a path,
    bytes or a DataFrame is taken out of `params` and sent as the part (a DataFrame as Parquet)."""
    value = params.get("background")
    if value is None or (isinstance(value, str) and value.strip().startswith(SAMPLE_PREFIX)):
        return params, None
    if isinstance(value, str | os.PathLike) and not Path(value).is_file():
        raise FileNotFoundError(f"background={str(value)!r} is neither sample:N nor a file")
    rest = {name: given for name, given in params.items() if name != "background"}
    return rest, replace(rows_upload(value), part="background")


def csv_bytes(
    data: DataLike, target: str | None = None, training_index: str | Sequence[int] | None = None
) -> bytes:
    """`data` as CSV bytes: a path or bytes as they are, a DataFrame written as CSV."""
    if hasattr(data, "to_csv") and hasattr(data, "columns"):
        csv: str = prepared_frame(data, target, training_index).to_csv(index=False)
        return csv.encode("utf-8")
    found = upload(data, target, training_index)
    return found.path.read_bytes() if found.path is not None else found.content or b""


def _content_type(path: Path) -> str:
    suffixes = "".join(path.suffixes[-2:]).lower()
    if suffixes.endswith((".parquet", ".pq")):
        return PARQUET_TYPE
    if suffixes.endswith((".arrow", ".feather", ".ipc")):
        return "application/vnd.apache.arrow.file"
    if suffixes.endswith(".gz"):
        return "application/gzip"
    return "text/csv"


def _parquet_bytes(frame: Any) -> bytes | None:
    try:
        import pyarrow  # noqa: F401 - only to know whether pandas can write Parquet
    except ImportError:
        return None
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _no_training_index(training_index: object, what: str) -> None:
    if training_index is not None:
        raise TypeError(
            f"training_index= applies to a DataFrame; {what} must already hold a column "
            "named 'training_index'"
        )


def prepared_frame(frame: Any, target: str | None, training_index: str | Sequence[int] | None) -> Any:
    """A copy of `frame` that holds its target column (checked here, so the mistake is named before the
    upload) and, optionally, a `training_index` column."""
    frame = frame.copy()
    target = target or "target"
    if target not in frame.columns:
        hint = "name it with target=" if target == "target" else "check target="
        raise ValueError(f"target={target!r} is not a column of the DataFrame: {hint}")
    if isinstance(training_index, str):
        if training_index not in frame.columns:
            raise ValueError(f"training_index={training_index!r} is not a column of the DataFrame")
        frame = frame.rename(columns={training_index: "training_index"})
    elif training_index is not None:
        values = list(training_index)
        if len(values) != len(frame):
            raise ValueError(f"training_index has {len(values)} values for {len(frame)} rows")
        frame["training_index"] = [int(value) for value in values]
    return frame
