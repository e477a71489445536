"""What a user passes as `data`, turned into the CSV bytes the service takes."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DataLike = str | os.PathLike[str] | bytes | Any  # Any: a pandas.DataFrame (pandas is optional)


def csv_bytes(
    data: DataLike, target: str | None = None, training_index: str | Sequence[int] | None = None
) -> bytes:
    """A path or bytes are sent as they are; a DataFrame is written as CSV with its `target` column (named by
    `target=`) renamed to `target` and, optionally, a `training_index` column (a column name or 1/0 per row).
    """
    if isinstance(data, bytes | bytearray):
        _no_frame_options(target, training_index, "bytes")
        return bytes(data)
    if isinstance(data, str | os.PathLike):
        _no_frame_options(target, training_index, "a file")
        return Path(data).read_bytes()
    if hasattr(data, "to_csv") and hasattr(data, "columns"):
        return _frame_csv(data, target, training_index)
    raise TypeError(f"data must be a path, bytes or a pandas.DataFrame, not {type(data).__name__}")


def _no_frame_options(target: str | None, training_index: object, what: str) -> None:
    if target is not None or training_index is not None:
        raise TypeError(f"target= and training_index= apply to a DataFrame; {what} must already hold them")


def _frame_csv(frame: Any, target: str | None, training_index: str | Sequence[int] | None) -> bytes:
    frame = frame.copy()
    if target is not None and target != "target":
        if target not in frame.columns:
            raise ValueError(f"target={target!r} is not a column of the DataFrame")
        if "target" in frame.columns:
            raise ValueError("the DataFrame has a 'target' column besides target=; rename one of them")
        frame = frame.rename(columns={target: "target"})
    if "target" not in frame.columns:
        raise ValueError("the DataFrame has no 'target' column: name it with target=")
    if isinstance(training_index, str):
        if training_index not in frame.columns:
            raise ValueError(f"training_index={training_index!r} is not a column of the DataFrame")
        frame = frame.rename(columns={training_index: "training_index"})
    elif training_index is not None:
        values = list(training_index)
        if len(values) != len(frame):
            raise ValueError(f"training_index has {len(values)} values for {len(frame)} rows")
        frame["training_index"] = [int(value) for value in values]
    csv: str = frame.to_csv(index=False)
    return csv.encode("utf-8")
